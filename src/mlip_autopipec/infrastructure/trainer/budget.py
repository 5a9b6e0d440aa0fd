"""Sizing a fit: the cost estimate before it, and the iterations a time budget allows."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mlip_autopipec.config.config_model import FitSettings
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.trainer.cost import (
    FINISH_FIXED_S,
    MIN_BUDGET_ITERATIONS,
    CostEstimate,
    estimate_cost,
)
from mlip_autopipec.infrastructure.trainer.fit_deadline import CALLBACK_NAME
from mlip_autopipec.infrastructure.trainer.input_yaml import MIN_FUNCTIONS_PER_BLOCK, PacemakerInput

log = logging.getLogger(__name__)

#: Each step of a basis made smaller for a time budget keeps this share of the functions.
SHRINK_FACTOR = 0.7
#: With a budget and no maxiter given, pacemaker may run this many times the planned
#: iterations: the budget, not maxiter, ends the fit when the estimate was pessimistic.
BUDGET_MAXITER_FACTOR = 10


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
) -> SizedFit:
    """Estimate the cost; with ``fit.time_budget``, choose the iterations (and, unless
    ``basis_given``, a smaller basis when fewer than MIN_BUDGET_ITERATIONS would fit).

    ``threads``: pacemaker's threads. ``elapsed_s`` is the time the training has already spent
    (selection): the budget covers the whole training.
    """
    maxiter_given = "maxiter" in fit.model_fields_set
    estimate = _estimate(pacemaker_input, training_set, fit, threads)
    if fit.time_budget is None:
        return SizedFit(pacemaker_input, estimate, fit.maxiter, fit.maxiter, None)
    remaining = fit.time_budget - elapsed_s
    if estimate is None:
        return SizedFit(pacemaker_input, None, fit.maxiter, fit.maxiter, remaining - FINISH_FIXED_S)

    functions = _functions_per_element(pacemaker_input)
    # Fewer than MIN_FUNCTIONS_PER_BLOCK per species block starve the fit (README, "Basis
    # size"): a tight budget then runs fewer iterations instead.
    blocks = 2 ** (len(pacemaker_input.potential.elements) - 1)
    fewest = min(functions, MIN_FUNCTIONS_PER_BLOCK * blocks)
    iterations = estimate.iterations_within(remaining)
    while not basis_given and iterations < MIN_BUDGET_ITERATIONS and functions > fewest:
        functions = max(fewest, int(functions * SHRINK_FACTOR))
        pacemaker_input = _with_functions(pacemaker_input, functions)
        estimate = _estimate(pacemaker_input, training_set, fit, threads)
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
    pacemaker_input: PacemakerInput, training_set: Dataset, fit: FitSettings, threads: int
) -> CostEstimate | None:
    potential = pacemaker_input.to_yaml_dict()["potential"]
    try:
        return estimate_cost(
            potential, training_set, test_size=fit.test_size, threads=threads, seed=fit.seed
        )
    except Exception as error:  # an estimate must never stop a fit
        log.warning("no cost estimate: the basis could not be built in this process (%s)", error)
        return None


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
    """pacemaker's input with the callback that ends the fit at the deadline in its environment."""
    callbacks = [*(pacemaker_input.fit.callbacks or []), CALLBACK_NAME]
    return pacemaker_input.model_copy(
        update={"fit": pacemaker_input.fit.model_copy(update={"callbacks": callbacks})}
    )
