"""Sizing a fit: the cost estimate before it, and the iterations a time budget allows."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from mlip_autopipec.config.config_model import FitSettings
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.pacemaker.deadline import CALLBACK_NAME, DEADLINE_ENV
from mlip_autopipec.infrastructure.pacemaker.input_yaml import (
    MIN_FUNCTIONS_PER_BLOCK,
    PacemakerInput,
)
from mlip_autopipec.infrastructure.trainer.cost.estimate import (
    FINISH_FIXED_S,
    MIN_BUDGET_ITERATIONS,
    CostEstimate,
    estimate_cost,
    sample_indices,
)
from mlip_autopipec.infrastructure.trainer.cost.probe import (
    PROBE_ITERATIONS,
    PROBE_SAMPLE_ATOMS,
    PROBE_TIME_LIMIT_S,
    ProbeTiming,
    ProbeUnavailable,
    check_pacemaker,
    run_probe,
)
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile
from mlip_autopipec.infrastructure.trainer.programs.steps import ProgramStep

log = logging.getLogger(__name__)

#: Each step of a basis made smaller for a time budget keeps this share of the functions.
SHRINK_FACTOR = 0.7
#: With a budget and no maxiter given, pacemaker may run this many times the planned
#: iterations: the budget, not maxiter, ends the fit when the estimate was pessimistic.
BUDGET_MAXITER_FACTOR = 10
#: pacemaker's short fit of a sample (cost/probe.py) measures the cost when that is expected
#: to cost at most this share of the fit (or of the time budget): it repeats the start-up.
PROBE_SHARE = 0.1


@dataclass(frozen=True)
class SizedFit:
    """pacemaker's input sized to the budget, and what the fit is expected to cost."""

    pacemaker_input: PacemakerInput
    estimate: CostEstimate | None  # None: the basis could not be timed (see the log)
    planned_iterations: int
    maxiter: int  # what pacemaker is told
    optimiser_time_s: float | None  # s from now until the optimiser must stop; None: no budget


def size_fit(
    pacemaker_input: PacemakerInput,
    training_set: Dataset,
    fit: FitSettings,
    *,
    basis_given: bool,
    threads: int,
    elapsed_s: float = 0.0,
    profile: ProgramProfile | None = None,
    cores: int | None = None,
) -> SizedFit:
    """Estimate the cost; with ``fit.time_budget``, choose the iterations (and, unless
    ``basis_given``, a smaller basis when fewer than MIN_BUDGET_ITERATIONS would fit).

    ``threads``: pacemaker's threads. ``elapsed_s`` is the time the training has already spent
    (selection): the budget covers the whole training. With ``profile`` (how pacemaker runs
    here: its threads and devices), pacemaker fits a sample of the data for a few iterations
    when that is cheap against the fit (PROBE_SHARE); otherwise the cost is modelled.
    ``cores``: the fit runs alone on that many cores (a batch job), not here: modelled.
    """
    maxiter_given = "maxiter" in fit.model_fields_set
    note = (
        "" if cores is None else f"for the batch job (cpus: {cores}), with this machine's constants"
    )
    estimate = _estimate(pacemaker_input, training_set, fit, threads, note=note, cores=cores)
    probe = None
    if estimate is not None and profile is not None and cores is None:
        started = time.monotonic()
        probe, note = _measure(profile, pacemaker_input, training_set, fit, estimate, elapsed_s)
        elapsed_s += time.monotonic() - started  # the budget covers the measurement
        measured = _estimate(pacemaker_input, training_set, fit, threads, probe, note)
        estimate = measured or estimate
    if fit.time_budget is None:
        return SizedFit(pacemaker_input, estimate, fit.maxiter, fit.maxiter, None)
    remaining = fit.time_budget - elapsed_s
    if estimate is None:
        return SizedFit(pacemaker_input, None, fit.maxiter, fit.maxiter, remaining - FINISH_FIXED_S)

    functions = _functions_per_element(pacemaker_input)
    # Fewer than MIN_FUNCTIONS_PER_BLOCK per species block starve the fit (docs:
    # explanation/trainer, the basis rule): a tight budget then runs fewer iterations instead.
    blocks = 2 ** (len(pacemaker_input.potential.elements) - 1)
    fewest = min(functions, MIN_FUNCTIONS_PER_BLOCK * blocks)
    iterations = estimate.iterations_within(remaining)
    while not basis_given and iterations < MIN_BUDGET_ITERATIONS and functions > fewest:
        functions = max(fewest, int(functions * SHRINK_FACTOR))
        pacemaker_input = _with_functions(pacemaker_input, functions)
        estimate = _estimate(pacemaker_input, training_set, fit, threads, probe, note, cores)
        if estimate is None:
            return SizedFit(
                pacemaker_input, None, fit.maxiter, fit.maxiter, remaining - FINISH_FIXED_S
            )
        iterations = estimate.iterations_within(remaining)
    if iterations < 1:
        raise ConfigurationError(
            [
                (
                    "trainer.fit.time_budget",
                    f"{fit.time_budget:g} s is too short: start-up and finishing alone take "
                    f"about {estimate.startup_s + estimate.finish_s:.0f} s here, one iteration "
                    f"about {estimate.seconds_per_iteration:.2g} s",
                )
            ]
        )
    planned = min(iterations, fit.maxiter) if maxiter_given else iterations
    maxiter = fit.maxiter if maxiter_given else BUDGET_MAXITER_FACTOR * planned
    pacemaker_input = pacemaker_input.model_copy(
        update={"fit": pacemaker_input.fit.model_copy(update={"maxiter": maxiter})}
    )
    return SizedFit(pacemaker_input, estimate, planned, maxiter, remaining - estimate.finish_s)


def _estimate(
    pacemaker_input: PacemakerInput,
    training_set: Dataset,
    fit: FitSettings,
    threads: int,
    probe: ProbeTiming | None = None,
    note: str = "",
    cores: int | None = None,
) -> CostEstimate | None:
    potential = pacemaker_input.to_yaml_dict()["potential"]
    try:
        return estimate_cost(
            potential,
            training_set,
            test_size=fit.test_size,
            threads=threads,
            seed=fit.seed,
            probe=probe,
            note=note,
            cores=cores,
        )
    except Exception as error:  # an estimate must never stop a fit
        log.warning("no cost estimate: the basis could not be built in this process (%s)", error)
        return None


def _measure(
    profile: ProgramProfile,
    pacemaker_input: PacemakerInput,
    training_set: Dataset,
    fit: FitSettings,
    model: CostEstimate,
    elapsed_s: float,
) -> tuple[ProbeTiming | None, str]:
    """pacemaker's short fit of a sample of the data (cost/probe.py) when that is cheap
    against the fit, else None and why not. The probe costs about pacemaker's start-up
    (Python, TensorFlow, tracing the graph) and its few iterations of the sample, as the
    model expects them."""
    if fit.time_budget is not None:
        room = fit.time_budget - elapsed_s
        room_name = "time budget"
    else:
        room = model.total_s(fit.maxiter)
        room_name = "fit"
    sample_share = min(1.0, PROBE_SAMPLE_ATOMS / model.fitted_atoms)
    expected = model.startup_s + PROBE_ITERATIONS * model.seconds_per_iteration * sample_share
    if expected > PROBE_SHARE * room:
        return None, (
            f"not measured: a short fit of a sample would take about {expected:.0f} s, more "
            f"than {PROBE_SHARE:.0%} of the {room_name}"
        )
    try:
        check_pacemaker(profile.executable("pacemaker"))
    except ProbeUnavailable as error:
        return None, f"not measured: {error}"
    limit = min(max(3 * expected, PROBE_TIME_LIMIT_S), 2 * PROBE_SHARE * room)
    log.info(
        "measuring the cost of an iteration: pacemaker fits a sample of the data for %d "
        "iterations (about %.0f s)",
        PROBE_ITERATIONS,
        expected,
    )
    started = time.monotonic()
    try:
        probe = run_probe(
            profile,
            pacemaker_input,
            training_set.subset(sample_indices(training_set, fit.seed, PROBE_SAMPLE_ATOMS)),
            total_functions=model.total_functions,
            with_test_set=fit.test_size > 0,
            time_limit_s=limit,
        )
    except ProbeUnavailable as error:
        spent = time.monotonic() - started
        log.warning("the cost could not be measured (%s); it is modelled instead", error)
        return None, f"not measured ({spent:.0f} s spent): {error}"
    return probe, ""


def _functions_per_element(pacemaker_input: PacemakerInput) -> int:
    value = pacemaker_input.potential.functions["number_of_functions_per_element"]
    assert isinstance(value, int)
    return value


def _with_functions(pacemaker_input: PacemakerInput, functions: int) -> PacemakerInput:
    potential = pacemaker_input.potential
    blocks = {**potential.functions, "number_of_functions_per_element": functions}
    return pacemaker_input.model_copy(
        update={"potential": potential.model_copy(update={"functions": blocks})}
    )


def with_deadline_callback(pacemaker_input: PacemakerInput) -> PacemakerInput:
    """pacemaker's input with the callback that ends the fit at the deadline in its environment
    (:func:`with_deadline`)."""
    callbacks = [*(pacemaker_input.fit.callbacks or []), CALLBACK_NAME]
    return pacemaker_input.model_copy(
        update={"fit": pacemaker_input.fit.model_copy(update={"callbacks": callbacks})}
    )


def with_deadline(fit: ProgramStep, sized: SizedFit | None) -> ProgramStep:
    """pacemaker's step with the deadline of a time budget (s since the epoch, counted from
    now) in its environment, where the callback of :func:`with_deadline_callback` reads it."""
    if sized is None or sized.optimiser_time_s is None:
        return fit
    deadline = {DEADLINE_ENV: repr(time.time() + sized.optimiser_time_s)}
    return fit.model_copy(update={"environment": deadline})
