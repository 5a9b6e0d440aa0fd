"""``finish RUN_DIR``: the interim potential of an interrupted fit made into a usable potential,
marked as such (``.yace``, active set, safety checks, report, ``potential.json``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.pacemaker.potential_file import add_metadata
from mlip_autopipec.infrastructure.rundir.claim import claim_run_directory
from mlip_autopipec.infrastructure.rundir.files import (
    FINISH_INPUT_YAML,
    FINISH_LOG,
    INTERIM_POTENTIAL,
    OUTPUT_POTENTIAL_YAML,
    RESUME_REPLACES,
)
from mlip_autopipec.infrastructure.trainer.active_set import activeset_step
from mlip_autopipec.infrastructure.trainer.after_fit import FitEnd, ReportBuilder
from mlip_autopipec.infrastructure.trainer.interrupted.interim import (
    UnfinishedRun,
    copy_file,
    rebuild_inputs,
    recorded_input,
    unfinished_run,
)
from mlip_autopipec.infrastructure.trainer.interrupted.resume import (
    pacemaker_input_from,
    resume_config,
)
from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink

#: Written into the potential's metadata (output_potential.yaml, then the .yace's source).
INTERIM_METADATA_KEY = "mlip_autopipec_finished_from_interim_at_iteration"


def finish_training(
    run_dir: Path,
    *,
    accept_failed_checks: bool = False,
    on_output_line: ProgressSink | None = None,
    report: ReportBuilder | None = None,
) -> Potential:
    """The potential of the interrupted run in ``run_dir``, built from its last interim
    potential and marked so (Python's ``finish``). OutputError for a directory that holds no
    unfinished run of ours."""
    unfinished = unfinished_run(run_dir, "finish")
    config = resume_config(unfinished.config, None)
    if accept_failed_checks:
        config = config.model_copy(update={"accept_failed_checks": True})
    trainer = PacemakerTrainer(config, on_output_line, report=report)
    return finish_interim(trainer, unfinished)


def finish_interim(trainer: PacemakerTrainer, unfinished: UnfinishedRun) -> Potential:
    """Build the potential of ``unfinished`` from its interim potential: pacemaker predicts the
    train and test sets with it (``--no-fit``: the same split, the same errors as after a fit),
    then everything after a fit runs; ``potential.json`` records ``fit_stop`` with
    ``finished_from: interim`` and the iteration."""
    config = trainer.config
    profile = trainer.profile()  # the programs are found before anything is written
    done = unfinished.iterations_done
    with claim_run_directory(unfinished.path, replaces=RESUME_REPLACES) as run:
        # 1. The same data and split, from the run's safe copies.
        prepared = rebuild_inputs(unfinished)
        # 2. The interim potential becomes the run's potential, marked in its metadata.
        output_yaml = run.path / OUTPUT_POTENTIAL_YAML
        copy_file(run.path / INTERIM_POTENTIAL, output_yaml)
        add_metadata(output_yaml, {INTERIM_METADATA_KEY: str(done)})
        # 3. pacemaker's predictions of it, nothing fitted.
        data = pacemaker_input_from(recorded_input(run.path), config, OUTPUT_POTENTIAL_YAML)
        write_text_atomic(
            run.path / FINISH_INPUT_YAML,
            yaml.safe_dump(data, sort_keys=False, default_flow_style=None),
        )
        predict = profile.program_step(
            "pacemaker",
            [FINISH_INPUT_YAML, "--no-fit"],
            title=f"predicting with the interim potential (iteration {done})",
        ).model_copy(update={"log": FINISH_LOG})
        result = profile.run_steps([predict, activeset_step(profile, config.active_set)], run.path)
        # 4. Everything after a fit: .yace, checks, record (fit_stop: finished from the
        #    interim potential), report.
        end = FitEnd(result, resumed_from=unfinished.resumed_from, interim_at=done)
        return trainer.after_fit(prepared, end, profile)
