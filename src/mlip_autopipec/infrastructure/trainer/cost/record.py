"""After a fit: what it cost against the estimate, whether it had converged, and a thin test set."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from mlip_autopipec.config.config_model import FitSettings
from mlip_autopipec.domain_models.potential import FitCost
from mlip_autopipec.infrastructure.pacemaker.log import read_fit_timing
from mlip_autopipec.infrastructure.trainer.cost.budget import SizedFit
from mlip_autopipec.infrastructure.trainer.cost.convergence import loss_trend
from mlip_autopipec.infrastructure.trainer.programs.steps import JobResult

log = logging.getLogger(__name__)

#: A test set with fewer structures than this says little about the potential.
MIN_TEST_STRUCTURES = 5
#: An element with fewer atoms than this in the test set is barely tested.
MIN_TEST_ATOMS_PER_ELEMENT = 10


def estimated_cost(sized: SizedFit, fit: FitSettings) -> FitCost | None:
    """The record of the estimate made before the fit; None when nothing was estimated."""
    if sized.estimate is None:
        return None
    return FitCost(
        estimated_s_per_iteration=sized.estimate.seconds_per_iteration,
        estimated_iterations=sized.planned_iterations,
        estimated_total_s=sized.estimate.total_s(sized.planned_iterations),
        estimated_startup_s=sized.estimate.startup_s,
        estimate_method=sized.estimate.method,
        estimate_note=sized.estimate.note or None,
        time_budget_s=fit.time_budget,
    )


def cost_of_steps(
    workdir: Path,
    log_path: Path,
    estimated: FitCost | None,
    result: JobResult,
    fit_started: datetime | None,
    *,
    maxiter_setting: str = "fit.maxiter",
) -> FitCost | None:
    """What pacemaker's log says the fit of ``result`` cost, beside the estimate (when one
    was made): a local fit began at ``fit_started`` and took its step's seconds; a batch job's
    (``fit_started`` None) own log says when it began and ended. None when pacemaker's step
    did not run."""
    fit = result.outcome("pacemaker")
    if fit is None or fit.seconds is None:
        return None
    if fit_started is None:
        return measured_cost(workdir, log_path, estimated, maxiter_setting=maxiter_setting)
    fit_ended = fit_started + timedelta(seconds=fit.seconds)
    return measured_cost(
        workdir, log_path, estimated, fit_started, fit_ended, maxiter_setting=maxiter_setting
    )


def measured_cost(
    workdir: Path,
    log_path: Path,
    estimated: FitCost | None,
    fit_started: datetime | None = None,
    fit_ended: datetime | None = None,
    *,
    maxiter_setting: str = "fit.maxiter",
) -> FitCost | None:
    """The estimate beside what pacemaker's log says the fit cost (it started at
    ``fit_started`` and ended at ``fit_ended``, default now, local time as in the log; None:
    at the log's first line, as for a batch job, and ended at the log's last record); warns
    when the loss was still falling at the end, naming ``maxiter_setting`` as what would let
    it go on. None when nothing was estimated."""
    timing = read_fit_timing(log_path)
    if fit_started is not None:
        fit_s: float | None = ((fit_ended or datetime.now()) - fit_started).total_seconds()
    else:
        fit_started = timing.started_at
        fit_s = None
        if fit_started is not None and timing.last_record_at is not None:
            fit_s = (timing.last_record_at - fit_started).total_seconds()
    startup_s = None
    if (
        fit_started is not None
        and timing.first_iteration_at is not None
        and timing.seconds_per_iteration is not None
    ):
        first = (timing.first_iteration_at - fit_started).total_seconds()
        startup_s = max(0.0, first - timing.seconds_per_iteration)
    trend = loss_trend(workdir)
    still_improving = None
    if trend is not None:
        still_improving = trend.message(timing.seconds_per_iteration, fit_s, maxiter_setting)
        log.warning("%s", still_improving)
    if timing.stopped_at_budget:
        log.warning(
            "the time budget ended the fit after %d iterations; the potential is that of the "
            "last iteration",
            timing.iterations,
        )
    if estimated is not None and timing.seconds_per_iteration is not None:
        log.info(
            "cost: %.3g s per iteration measured, %.3g s estimated (%s)",
            timing.seconds_per_iteration,
            estimated.estimated_s_per_iteration,
            estimated.estimate_method or "model",
        )
    if estimated is None:
        return None
    return estimated.model_copy(
        update={
            "s_per_iteration": timing.seconds_per_iteration,
            "s_per_evaluation": timing.seconds_per_evaluation,
            "iterations": timing.iterations or None,
            "startup_s": startup_s,
            "fit_s": fit_s,
            "stopped_at_budget": timing.stopped_at_budget,
            "still_improving": still_improving,
        }
    )


def warn_about_test_split(n_structures: int, test_size: float) -> None:
    """Warns before the fit when pacemaker's split leaves fewer than MIN_TEST_STRUCTURES."""
    n_test = int(n_structures * test_size)  # pacemaker rounds down
    if test_size > 0 and n_test < MIN_TEST_STRUCTURES:
        log.warning(
            "the test set will hold %d structure(s) (fit.test_size %g of %d): its errors say "
            "little about the potential; raise test_size or test on a separate dataset",
            n_test,
            test_size,
            n_structures,
        )


def warn_about_test_set(test_symbols: Sequence[str], elements: Sequence[str]) -> None:
    """Warns when an element has fewer than MIN_TEST_ATOMS_PER_ELEMENT atoms in the test set
    (``test_symbols``: the element of each atom of the test set; empty: nothing to check)."""
    if not len(test_symbols):
        return
    counts = Counter(str(symbol) for symbol in test_symbols)
    thin = [
        f"{element} ({counts[element]})"
        for element in elements
        if counts[element] < MIN_TEST_ATOMS_PER_ELEMENT
    ]
    if thin:
        log.warning(
            "the test set holds few atoms of %s: its errors say little about them",
            ", ".join(thin),
        )


def cost_rows(cost: FitCost) -> list[list[object]]:
    """(what, value) rows of the cost for the training report: estimated against measured."""

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3g}"

    rows: list[list[object]] = [
        [
            "s per iteration, estimated / measured",
            f"{seconds(cost.estimated_s_per_iteration)} / {seconds(cost.s_per_iteration)}",
        ],
        ["estimated by", _method(cost)],
        ["iterations, planned / run", f"{cost.estimated_iterations} / {cost.iterations or '-'}"],
        [
            "start-up s, estimated / measured",
            f"{seconds(cost.estimated_startup_s)} / {seconds(cost.startup_s)}",
        ],
        [
            "wall time of the fit s, estimated / measured",
            f"{seconds(cost.estimated_total_s)} / {seconds(cost.fit_s)}",
        ],
    ]
    if cost.time_budget_s is not None:
        ended = "yes" if cost.stopped_at_budget else "no"
        rows.append(["time budget s (ended the fit)", f"{cost.time_budget_s:g} ({ended})"])
    if cost.still_improving is not None:
        rows.append(["not converged", cost.still_improving])
    return rows


def _method(cost: FitCost) -> str:
    method = cost.estimate_method or "model"
    return f"{method} ({cost.estimate_note})" if cost.estimate_note else method


def log_estimate(
    sized: SizedFit, fit: FitSettings, n_training: int, *, fixed_test_set: bool
) -> None:
    """Say before the fit what it will cost, and warn about a test split too small to mean much
    (``fixed_test_set``: a test file was given, so there is no split)."""
    if not fixed_test_set:
        warn_about_test_split(n_training, fit.test_size)
    if sized.estimate is not None:
        budget = "" if fit.time_budget is None else f" (time budget {fit.time_budget:g} s)"
        log.info("cost estimate: %s%s", sized.estimate.describe(sized.planned_iterations), budget)
