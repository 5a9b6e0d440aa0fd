"""The CLI's batch commands: ``train --detach``, ``status RUN_DIR`` and ``wait RUN_DIR``."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlip_autopipec.cli.common import EXIT_OK, EXIT_SCHEDULER_UNREACHABLE, EXIT_TRAINING_FAILED
from mlip_autopipec.cli.summary import summary
from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.errors import ConfigurationError

if TYPE_CHECKING:
    from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink

log = logging.getLogger("mlip_autopipec")


def submit(
    config: TrainerConfig,
    dataset: Dataset,
    out: Path,
    progress: ProgressSink | None = None,
    test_dataset: Dataset | None = None,
) -> int:
    """Submit the batch job of a fit, say how to follow it, and exit."""
    from mlip_autopipec.config.execution import BatchExecution
    from mlip_autopipec.infrastructure.rundir.records import BatchRecord
    from mlip_autopipec.infrastructure.trainer import make_pacemaker_trainer
    from mlip_autopipec.infrastructure.trainer.batch import runner as batch
    from mlip_autopipec.report import build_report_or_warn

    if config.type != "pacemaker" or not isinstance(config.execution, BatchExecution):
        raise ConfigurationError(
            [("trainer.execution.type", "--detach needs a batch execution: slurm, pbs or lsf")]
        )
    log.info("%s", dataset)
    trainer = make_pacemaker_trainer(config, progress, report=build_report_or_warn)
    run_dir = batch.submit(trainer, dataset, out, test_dataset=test_dataset)
    record = BatchRecord.load(run_dir)
    print(f"submitted {record.backend} job {record.job_id}; run directory {run_dir}")
    print(f"follow it with:  mlip-autopipec wait {run_dir}")
    print(f"ask about it:    mlip-autopipec status {run_dir}")
    return EXIT_OK


def status(run_dir: Path) -> int:
    """Print what the run of ``run_dir`` is doing; exit 1 for a failed run."""
    from mlip_autopipec.infrastructure.trainer.batch.status import describe

    state, text = describe(run_dir)
    print(text)
    if state == "unknown":
        return EXIT_SCHEDULER_UNREACHABLE
    return EXIT_TRAINING_FAILED if state == "failed" else EXIT_OK


def wait(
    run_dir: Path,
    progress_reporter: Callable[[TrainerConfig, argparse.Namespace], ProgressSink | None],
    args: argparse.Namespace,
) -> int:
    """Follow the job of ``run_dir`` to its end and build the potential, as ``train`` does."""
    from mlip_autopipec.infrastructure.rundir.files import BATCH_JOB_JSON
    from mlip_autopipec.infrastructure.rundir.records import BatchRecord
    from mlip_autopipec.infrastructure.trainer import make_pacemaker_trainer
    from mlip_autopipec.infrastructure.trainer.batch import runner as batch
    from mlip_autopipec.report import build_report_or_warn

    # The programs of this machine, never those the record names (a warning if they differ).
    config = BatchRecord.load(run_dir).config_here(Path(run_dir) / BATCH_JOB_JSON)
    started = time.perf_counter()
    progress = progress_reporter(config, args)
    trainer = make_pacemaker_trainer(config, progress, report=build_report_or_warn)
    potential = batch.wait(trainer, run_dir)
    print(summary(potential, wall_time_s=time.perf_counter() - started))
    return EXIT_OK
