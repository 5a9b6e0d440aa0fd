"""Everything after pacemaker, the same for every way a fit ends: a fit here or in a batch job,
a resumed fit, and the interim potential of an interrupted one made usable (``finish``).

pacemaker's outputs are read (its potential with our metadata, its predictions copied to a
format that cannot run code), the fit's cost and how it stopped are recorded, the ``.yace`` and
active set are made, the safety gate runs, ``potential.json`` is written last, then the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from mlip_autopipec.analysis.safety import gate_potential, refuse_failed
from mlip_autopipec.config.config_model import FitSettings, TrainerConfig
from mlip_autopipec.domain_models.fit_stop import FitStop
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.infrastructure.pacemaker.early_stop import early_stop_record, stopped_early
from mlip_autopipec.infrastructure.pacemaker.log import read_fit_timing
from mlip_autopipec.infrastructure.pacemaker.outputs import (
    PredictionArrays,
    convert_fit_predictions,
)
from mlip_autopipec.infrastructure.pacemaker.potential_file import (
    add_metadata,
    potential_metadata,
    set_reference_energies,
)
from mlip_autopipec.infrastructure.rundir.files import (
    DIMERS_PNG,
    OUTPUT_POTENTIAL_YAML,
    PACEMAKER_LOG,
    POTENTIAL_YACE,
    TEST_PREDICTIONS,
    TRAIN_PREDICTIONS,
    YAML2YACE_LOG,
)
from mlip_autopipec.infrastructure.trainer.active_set import active_set_of
from mlip_autopipec.infrastructure.trainer.cost.record import cost_of_steps, warn_about_test_set
from mlip_autopipec.infrastructure.trainer.plan import PreparedRun
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile
from mlip_autopipec.infrastructure.trainer.programs.steps import JobResult

#: Builds the training report of a run directory (the report layer's, handed down by the
#: caller); it must not raise: a finished potential stands without its report.
ReportBuilder = Callable[[Path], object]


@dataclass(frozen=True)
class FitEnd:
    """How pacemaker's steps ended: what the record of the fit needs from them."""

    result: JobResult
    #: When pacemaker started here (local time, as its log); None: in a batch job, whose own
    #: log says when it began and ended.
    started: datetime | None = None
    #: ``train --resume``: the iterations done before this fit (its log counts from 0 again).
    resumed_from: int | None = None
    #: ``finish``: the iteration of the interim potential made the run's potential (nothing
    #: was fitted, so no cost is measured).
    interim_at: int | None = None


def fit_stop(end: FitEnd, log_path: Path) -> FitStop | None:
    """How the fit ended, for ``potential.json``: finished from an interim potential, resumed,
    stopped early by pacemaker, or None for a fit that ran to its end."""
    if end.interim_at is not None:
        return FitStop(
            stopped_at_iteration=end.interim_at,
            finished_from="interim",
            resumed_from_iteration=end.resumed_from or None,
        )
    if end.resumed_from is not None:
        return FitStop(
            stopped_at_iteration=end.resumed_from + read_fit_timing(log_path).iterations,
            resumed_from_iteration=end.resumed_from,
            early_stop=stopped_early(log_path),
        )
    return early_stop_record(log_path)


def after_fit(
    config: TrainerConfig,
    prepared: PreparedRun,
    end: FitEnd,
    profile: ProgramProfile,
    report: ReportBuilder | None = None,
) -> Potential:
    """Everything after pacemaker's steps (``end``): its outputs read, cost and end recorded,
    .yace, active set, safety gate, ``potential.json`` and the report (``report``, if given).
    Raises what the safety gate refuses unless ``config.accept_failed_checks``."""
    workdir, run = prepared.workdir, prepared.run
    log_path = workdir / PACEMAKER_LOG
    predictions = read_fit(prepared, config.fit)
    cost = None
    if end.interim_at is None:  # the estimate beside what pacemaker's log says it cost
        cost = cost_of_steps(
            workdir,
            log_path,
            run.estimate,
            end.result,
            end.started,
            maxiter_setting=run.maxiter_setting,
        )
    stop = fit_stop(end, log_path)

    # Convert to .yace, the reference energies as its E0.
    with profile.step("converting to .yace (pace_yaml2yace)"):
        yace = convert_to_yace(prepared, profile)

    # The record, with pacemaker's own errors of the final potential and the active set of
    # the fitted potential (the extrapolation grade of new structures).
    potential = Potential(
        run_dir=workdir,
        trainer="pacemaker",
        yace_file=yace,
        yaml_file=OUTPUT_POTENTIAL_YAML,
        active_set_file=active_set_of(end.result, workdir),
        gamma_tolerance=config.active_set.gamma_tolerance,
        elements=run.elements,
        cutoff=config.cutoff,
        baseline=run.baseline,
        reference_energies=run.reference_energies,
        reference_energies_warning=run.reference_energies_warning,
        train_metrics=predictions[TRAIN_PREDICTIONS].metrics,
        test_metrics=(
            predictions[TEST_PREDICTIONS].metrics if TEST_PREDICTIONS in predictions else None
        ),
        selection=run.selection,
        cost=cost,
        lineage=run.lineage,
        fit_stop=stop,
        provenance=run.provenance,
    )
    if TEST_PREDICTIONS in predictions:
        warn_about_test_set(predictions[TEST_PREDICTIONS].symbols.tolist(), potential.elements)

    # The safety gate on the deployed potential (ACE + baseline): dimers, compression.
    with profile.step("safety checks (dimers, compression)"):
        potential, safety = gate_potential(
            potential, run.distances(), prepared.training_set, workdir / DIMERS_PNG
        )

    # potential.json is written last: it marks a finished run (checks_passed says
    # whether it is fit for use).
    potential.save()

    if report is not None:
        with profile.step("training report"):
            report(workdir)

    refuse_failed(safety, workdir, accept=config.accept_failed_checks)
    return potential


def read_fit(prepared: PreparedRun, fit: FitSettings) -> dict[str, PredictionArrays]:
    """Right after pacemaker: metadata into its potential, and its predictions copied to a
    format that cannot run code; every structure and atom we wrote must be in them."""
    workdir, run = prepared.workdir, prepared.run
    output_yaml = workdir / OUTPUT_POTENTIAL_YAML
    require(output_yaml, "pacemaker finished but wrote no potential", PACEMAKER_LOG)
    try:
        add_metadata(output_yaml, potential_metadata(run.baseline, run.reference_energies))
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError) as error:
        raise TrainerError(
            f"pacemaker wrote an unreadable {OUTPUT_POTENTIAL_YAML} "
            f"({type(error).__name__}: {str(error).splitlines()[0]})",
            workdir=workdir,
            log_path=workdir / PACEMAKER_LOG,
        ) from error
    require(workdir / TRAIN_PREDICTIONS, "pacemaker wrote no predictions", PACEMAKER_LOG)
    return convert_fit_predictions(
        workdir,
        prepared.training_set,
        prepared.test_dataset,
        weighting=fit.weighting,
        log_name=PACEMAKER_LOG,
    )


def convert_to_yace(prepared: PreparedRun, profile: ProgramProfile) -> str:
    """``potential.yace`` from pacemaker's potential, with the reference energies as its E0;
    written under a temporary name, so that a .yace exists only when complete."""
    workdir = prepared.workdir
    partial_yace = workdir / f".{POTENTIAL_YACE}.partial"
    profile.run("pace_yaml2yace", [OUTPUT_POTENTIAL_YAML, "-o", partial_yace.name], workdir)
    require(partial_yace, "pace_yaml2yace wrote no .yace file", YAML2YACE_LOG)
    set_reference_energies(partial_yace, prepared.run.reference_energies)
    partial_yace.replace(workdir / POTENTIAL_YACE)
    return POTENTIAL_YACE


def require(path: Path, message: str, log_name: str) -> None:
    """TrainerError (``message``, naming the log to read) unless a program wrote ``path``."""
    if not path.exists():
        raise TrainerError(
            f"{message} ({path.name} is missing)",
            workdir=path.parent,
            log_path=path.parent / log_name,
        )
