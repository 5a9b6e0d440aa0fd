"""``train --resume``: an interrupted fit goes on from pacemaker's last interim potential, with
the same data, split, basis and loss, for the iterations it had left."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.config.execution import BatchExecution, LocalExecution
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.pacemaker.early_stop import early_stopping_keys
from mlip_autopipec.infrastructure.pacemaker.input_yaml import PacemakerInput
from mlip_autopipec.infrastructure.rundir.claim import claim_run_directory
from mlip_autopipec.infrastructure.rundir.files import (
    INTERIM_POTENTIAL,
    RESUME_INPUT_YAML,
    RESUME_REPLACES,
    RESUME_START,
)
from mlip_autopipec.infrastructure.trainer.active_set import activeset_step
from mlip_autopipec.infrastructure.trainer.after_fit import FitEnd, ReportBuilder
from mlip_autopipec.infrastructure.trainer.cost.budget import (
    size_fit,
    with_deadline,
    with_deadline_callback,
)
from mlip_autopipec.infrastructure.trainer.cost.record import estimated_cost
from mlip_autopipec.infrastructure.trainer.interrupted.interim import (
    UnfinishedRun,
    copy_file,
    rebuild_inputs,
    recorded_input,
    unfinished_run,
    write_resumed_from,
)
from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink

log = logging.getLogger(__name__)

#: Settings a resumed fit may change: how long it runs, on what, and what it accepts.
#: Everything else (data handling, basis, loss, split, baseline) must be the run's own.
MAY_DIFFER = (
    "fit.maxiter",
    "fit.time_budget",
    "fit.early_stop_patience",
    "fit.early_stop_min_improvement",
    "threads",
    "gpu_devices",
    "time_limit_seconds",
    "accept_failed_checks",
    "executables",
    "execution",
)


def resume_config(recorded: TrainerConfig, given: TrainerConfig | None) -> TrainerConfig:
    """The config of a resumed fit: the run's own, or ``given`` when it agrees with it on
    everything but MAY_DIFFER (ConfigurationError naming each field that differs). The fit
    runs on this machine."""
    config = recorded if given is None else given
    if given is not None:
        differing = [
            (name, mine, theirs)
            for name, mine, theirs in _differences(
                given.model_dump(mode="json"), recorded.model_dump(mode="json")
            )
            if not any(name == field or name.startswith(field + ".") for field in MAY_DIFFER)
        ]
        if differing:
            raise ConfigurationError(
                [
                    (
                        f"trainer.{name}",
                        f"is {mine!r} here but {theirs!r} in the run being resumed: a resumed "
                        "fit keeps its data, basis, loss and split (only fit.maxiter, "
                        "fit.time_budget, fit.early_stop_*, threads and the like may change)",
                    )
                    for name, mine, theirs in differing
                ]
            )
        if isinstance(given.execution, BatchExecution):
            raise ConfigurationError(
                [("trainer.execution", "train --resume runs the fit on this machine: use local")]
            )
    if isinstance(config.execution, BatchExecution):
        log.info("the run was a batch job; its resumed fit runs on this machine")
        config = config.model_copy(update={"execution": LocalExecution()})
    return config


def resume_training(
    run_dir: Path,
    config: TrainerConfig | None = None,
    *,
    on_output_line: ProgressSink | None = None,
    report: ReportBuilder | None = None,
) -> Potential:
    """Continue the interrupted fit of ``run_dir`` from its last interim potential (Python's
    ``train --resume``). ``config``, if given, may differ from the run's own only in
    MAY_DIFFER. OutputError for a directory that holds no unfinished run of ours."""
    unfinished = unfinished_run(run_dir, "resume", None if config is None else config.executables)
    config = resume_config(unfinished.config, config)
    trainer = PacemakerTrainer(config, on_output_line, report=report)
    return resume_fit(trainer, unfinished)


def resume_fit(trainer: PacemakerTrainer, unfinished: UnfinishedRun) -> Potential:
    """Go on with the fit of ``unfinished`` from its interim potential, then post-process it as
    any fit (.yace, active set, checks, record, report); ``potential.json`` says where it
    resumed (``fit_stop``)."""
    config = trainer.config
    started = time.monotonic()
    profile = trainer.profile()  # the programs are found before anything is written
    done = unfinished.iterations_done
    with claim_run_directory(unfinished.path, replaces=RESUME_REPLACES) as run:
        # 1. Start from a copy of the interim potential: pacemaker overwrites its own.
        copy_file(run.path / INTERIM_POTENTIAL, run.path / RESUME_START)
        write_resumed_from(run.path, done)
        log.info("resuming the fit of %s from its interim potential (iteration %d)", run.path, done)
        # 2. The same data and split, from the run's safe copies.
        prepared = rebuild_inputs(unfinished)
        # 3. The run's own input.yaml, from the interim potential, for the iterations left.
        pacemaker_input = recorded_input(run.path)
        budget = config.fit.time_budget is not None  # the basis is timed only for a budget
        sized = size_fit(
            pacemaker_input,
            prepared.training_set,
            config.fit,
            basis_given=True,  # the basis is the interim potential's
            threads=config.threads or os.cpu_count() or 1,
            elapsed_s=time.monotonic() - started,
            profile=profile if budget else None,
        )
        maxiter = sized.maxiter
        if config.fit.time_budget is None or "maxiter" in config.fit.model_fields_set:
            maxiter = max(1, maxiter - done)  # what the interrupted fit had left
        pacemaker_input = pacemaker_input.model_copy(
            update={"fit": pacemaker_input.fit.model_copy(update={"maxiter": maxiter})}
        )
        fit = profile.program_step(
            "pacemaker", [RESUME_INPUT_YAML], title=f"fitting (pacemaker, from iteration {done})"
        )
        if sized.optimiser_time_s is not None:
            pacemaker_input = with_deadline_callback(pacemaker_input)
        _write_input(pacemaker_input, config, run.path / RESUME_INPUT_YAML, RESUME_START)
        profile.plan_iterations(maxiter)
        # 4. Fit and pace_activeset, then everything after a fit (its cost beside this fit's
        #    estimate).
        estimate = estimated_cost(sized, config.fit)
        prepared = replace(prepared, run=prepared.run.model_copy(update={"estimate": estimate}))
        fit_started = datetime.now()  # local time, as pacemaker's log
        steps = [with_deadline(fit, sized), activeset_step(profile, config.active_set)]
        result = profile.run_steps(steps, run.path)
        end = FitEnd(result, started=fit_started, resumed_from=done)
        return trainer.after_fit(prepared, end, profile)


def pacemaker_input_from(
    pacemaker_input: PacemakerInput, config: TrainerConfig, potential_file: str
) -> dict[str, Any]:
    """pacemaker's input as a mapping, its potential read from ``potential_file`` (coefficients
    included) instead of built from the basis section; early stopping as ``config`` says."""
    fit = pacemaker_input.fit.model_dump(exclude_none=True)
    for key in (
        "early_stopping_patience",
        "min_relative_test_loss_per_iter",
        "min_relative_train_loss_per_iter",
    ):
        fit.pop(key, None)
    fit |= early_stopping_keys(config.fit)
    data = pacemaker_input.to_yaml_dict()
    return data | {"potential": potential_file, "fit": fit}


def _write_input(
    pacemaker_input: PacemakerInput, config: TrainerConfig, path: Path, potential_file: str
) -> None:
    data = pacemaker_input_from(pacemaker_input, config, potential_file)
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def _differences(mine: Any, theirs: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted field, value here, value recorded) of every leaf that differs."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        found = []
        for key in sorted(set(mine) | set(theirs)):
            found += _differences(mine.get(key), theirs.get(key), f"{prefix}{key}.")
        return found
    return [] if mine == theirs else [(prefix.rstrip("."), mine, theirs)]
