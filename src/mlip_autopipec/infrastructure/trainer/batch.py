"""A fit whose compute part runs as one batch job: submit, follow, finish, and what it is doing.

The cheap steps stay on the login node: checks, reference energies, selection, the data file and
input.yaml before the job; metadata, ``.yace``, dimer check, report after it. The job runs
pacemaker and then pace_activeset (``batch_job.py``) in the run directory, which must be on a
filesystem shared with the compute nodes. ``batch_job.json`` records the backend, the job id,
the submission time and everything the post-processing needs, so that ``mlip-autopipec wait``
in another process ends a detached run exactly as a followed one ends.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.scheduler import JobRequest, JobStatus, Scheduler
from mlip_autopipec.infrastructure.trainer.batch_job import (
    JOB_RESULT_JSON,
    JOB_STEPS_JSON,
    JobResult,
    JobSteps,
    ProgramStep,
)
from mlip_autopipec.infrastructure.trainer.pending_run import BATCH_JOB_JSON, PendingRun
from mlip_autopipec.infrastructure.trainer.progress import reporting_step

if TYPE_CHECKING:
    from mlip_autopipec.domain_models.dataset import Dataset
    from mlip_autopipec.domain_models.potential import Potential
    from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PacemakerTrainer

log = logging.getLogger(__name__)

JOB_OUTPUT = "batch_job.log"
SETUP_SCRIPT = "job_setup.sh"
#: psij's files: the job script it generated, the job's exit code.
SCHEDULER_DIR = "scheduler"
LOG_TAIL_LINES = 40
#: s between reads of the log and of the job's state while following; the scheduler itself is
#: asked every ``execution.poll_seconds``.
_FOLLOW_STEP_S = 1.0


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchRecord(_Record):
    """``batch_job.json``: the job of a run directory and how to finish the run."""

    backend: str
    job_id: str
    submitted_at: datetime
    queue: str | None
    config: TrainerConfig
    run: PendingRun
    log_offset: int = 0
    outcome: Literal["failed", "cancelled"] | None = None
    reason: str | None = None

    def save(self, run_dir: Path) -> None:
        write_text_atomic(run_dir / BATCH_JOB_JSON, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> BatchRecord:
        """The record of ``run_dir``; FileNotFoundError if it holds no batch job."""
        path = Path(run_dir) / BATCH_JOB_JSON
        if not path.exists():
            raise FileNotFoundError(f"{run_dir} holds no batch job ({BATCH_JOB_JSON} is missing)")
        return cls.model_validate_json(path.read_text())

    @property
    def execution(self) -> BatchExecution:
        execution = self.config.execution
        assert isinstance(execution, BatchExecution)
        return execution


def job_environment(config: TrainerConfig, execution: BatchExecution) -> dict[str, str]:
    """Threads and GPUs for pacemaker on the node: the job's cores, its GPUs or none.

    With ``gpus > 0`` CUDA_VISIBLE_DEVICES is left to the scheduler, which sets it to the GPUs
    it allocated; with ``gpus: 0`` CUDA is hidden, as ``gpu_devices: ''`` does locally.
    """
    threads = str(config.threads or execution.cpus)
    environment = {
        "OMP_NUM_THREADS": threads,
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": threads,
        "TF_CPP_MIN_LOG_LEVEL": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if execution.gpus == 0:
        environment["CUDA_VISIBLE_DEVICES"] = "-1"
    return environment


def scheduler_for(
    execution: BatchExecution, run_dir: Path, poll_s: float | None = None
) -> Scheduler:
    return Scheduler(execution, run_dir / SCHEDULER_DIR, poll_s or execution.poll_seconds)


def refuse_running_job(run_dir: Path) -> None:
    """A run directory whose batch job may still run cannot take a new fit."""
    path = Path(run_dir) / BATCH_JOB_JSON
    if path.exists() and not (Path(run_dir) / POTENTIAL_JSON).exists():
        record = BatchRecord.load(run_dir)
        if record.outcome is None:
            raise TrainerError(
                f"{run_dir} has {record.backend} job {record.job_id} submitted at "
                f"{record.submitted_at:%Y-%m-%d %H:%M} UTC and not finished: follow it with "
                f"'mlip-autopipec wait {run_dir}' or choose another output directory",
                workdir=Path(run_dir),
            )


class BatchFit:
    """Runs the compute part of ``trainer``'s fit as a batch job (``trainer.execution``)."""

    def __init__(self, trainer: PacemakerTrainer) -> None:
        execution = trainer.config.execution
        if not isinstance(execution, BatchExecution):
            raise ValueError("BatchFit needs a batch execution (slurm, pbs or lsf)")
        self.trainer = trainer
        self.execution = execution

    def run(self, dataset: Dataset, workdir: Path) -> Potential:
        """Submit, follow and finish: what ``train`` does with a batch execution."""
        return self.wait(self.submit(dataset, workdir))

    def submit(self, dataset: Dataset, workdir: Path) -> Path:
        """Prepare the run directory and submit the job; returns the run directory."""
        from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PACEMAKER_LOG

        trainer = self.trainer
        # 1. The scheduler and its queue are checked before anything is written.
        scheduler = scheduler_for(self.execution, Path(workdir).resolve())
        scheduler.check()
        # 2. The cheap steps, on this machine: checks, selection, data file, input.yaml.
        prepared = trainer.prepare(dataset, workdir)
        run_dir = prepared.workdir
        for name in (BATCH_JOB_JSON, JOB_RESULT_JSON):
            (run_dir / name).unlink(missing_ok=True)
        # 3. The job: its steps, the user's setup lines, then the submission.
        steps = JobSteps(
            steps=prepared.compute_steps, time_limit_s=trainer.config.time_limit_seconds
        )
        write_text_atomic(run_dir / JOB_STEPS_JSON, steps.model_dump_json(indent=2) + "\n")
        setup = None
        if self.execution.setup:
            setup = run_dir / SETUP_SCRIPT
            write_text_atomic(setup, "\n".join(self.execution.setup) + "\n")
        pacemaker_log = run_dir / PACEMAKER_LOG
        log_offset = pacemaker_log.stat().st_size if pacemaker_log.exists() else 0
        request = JobRequest(
            executable=sys.executable,
            arguments=["-m", "mlip_autopipec.infrastructure.trainer.job_entry", str(run_dir)],
            directory=run_dir,
            output=run_dir / JOB_OUTPUT,
            name=f"mlip-autopipec-{run_dir.name}",
            environment=job_environment(trainer.config, self.execution),
            setup_script=setup,
        )
        with reporting_step(trainer.on_output_line, f"submitting to {self.execution.type}"):
            job = scheduler.submit(request)
        assert job.native_id is not None
        BatchRecord(
            backend=self.execution.type,
            job_id=job.native_id,
            submitted_at=datetime.now(UTC),
            queue=self.execution.queue,
            config=trainer.config,
            run=prepared.run,
            log_offset=log_offset,
        ).save(run_dir)
        return run_dir

    def wait(self, run_dir: Path) -> Potential:
        """Follow the job of ``run_dir`` to its end, then build the potential on this machine.

        Ctrl-C cancels the job (and says so). A job that failed or was ended by the scheduler
        raises TrainerError with the reason, and the run is recorded as failed.
        """
        from mlip_autopipec.domain_models.potential import Potential

        run_dir = Path(run_dir).resolve()
        if (run_dir / POTENTIAL_JSON).exists():
            return Potential.load(run_dir)
        record = BatchRecord.load(run_dir)
        if record.outcome is not None:
            raise _failure(record, run_dir, record.reason or record.outcome)
        result = self._follow(record, run_dir)
        return self.trainer.finish(run_dir, record.run, result)

    def _follow(self, record: BatchRecord, run_dir: Path) -> JobResult:
        from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PACEMAKER_LOG

        scheduler = scheduler_for(record.execution, run_dir)
        job = scheduler.attach(record.job_id)
        name = f"{record.backend} job {record.job_id}"
        tail = _LogTail(run_dir / PACEMAKER_LOG, record.log_offset, self.trainer.on_output_line)
        shown: str | None = None
        try:
            with reporting_step(self.trainer.on_output_line, f"fitting (pacemaker) in {name}"):
                while True:
                    status = scheduler.status(job)
                    if status.state != shown and status.state != "unknown":
                        shown = status.state
                        where = f" in queue {record.queue}" if record.queue else ""
                        log.info("%s: %s%s", name, status.state, where if shown == "queued" else "")
                    tail.read()
                    if status.final:
                        return job_result(record, run_dir, status)
                    # The job records its programs' success as its last act: no need to wait
                    # for the scheduler's next poll. A failure waits for the scheduler's reason.
                    finished = read_job_result(run_dir)
                    if finished is not None and finished.failed_step is None:
                        log.info("%s: its programs have finished", name)
                        return finished
                    time.sleep(_FOLLOW_STEP_S)
        except KeyboardInterrupt:
            print(f"\ninterrupted: cancelling {name} ...", file=sys.stderr, flush=True)
            scheduler.cancel(job)
            _mark(record, run_dir, "cancelled", f"{name} was cancelled (Ctrl-C)")
            print(f"{name} cancelled", file=sys.stderr, flush=True)
            raise


def active_set_of_job(job_result: JobResult, workdir: Path) -> str | None:
    """The active set that pace_activeset wrote in the batch job, or None (with a warning)."""
    from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import (
        ACTIVE_SET as ACTIVE_SET_FILE,
    )
    from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import (
        ACTIVESET_LOG as ACTIVESET_LOG_FILE,
    )

    outcome = job_result.outcome("pace_activeset")
    if outcome is not None and outcome.succeeded and (workdir / ACTIVE_SET_FILE).exists():
        return ACTIVE_SET_FILE
    (workdir / ACTIVE_SET_FILE).unlink(missing_ok=True)
    reason = "it did not run" if outcome is None else (outcome.message or "no active set written")
    if outcome is not None and outcome.log_tail:
        reason = outcome.log_tail[-1].strip()
    log.warning(
        "the potential has no active set, so no extrapolation grade: pace_activeset failed "
        "in the batch job (%s; see %s)",
        reason,
        workdir / ACTIVESET_LOG_FILE,
    )
    return None


class _LogTail:
    """Passes the lines a program appends to its log file on to ``on_line``."""

    def __init__(self, path: Path, offset: int, on_line: Callable[[str], None] | None) -> None:
        self.path = path
        self.offset = offset
        self.on_line = on_line
        self._partial = ""

    def read(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8", errors="replace") as stream:
            stream.seek(self.offset)
            text = stream.read()
            self.offset = stream.tell()
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()  # an unfinished last line waits for its end
        if self.on_line is not None:
            for line in lines:
                self.on_line(line)


def read_job_result(run_dir: Path) -> JobResult | None:
    """What the job recorded of its programs (``job_result.json``); None until it has ended."""
    path = run_dir / JOB_RESULT_JSON
    return JobResult.model_validate_json(path.read_text()) if path.exists() else None


def job_result(record: BatchRecord, run_dir: Path, status: JobStatus) -> JobResult:
    """The job's result when every required program succeeded; else TrainerError (recorded)."""
    name = f"{record.backend} job {record.job_id}"
    result = read_job_result(run_dir)
    scheduler_says = f" ({record.backend}: {status.message})" if status.message else ""
    if result is None:
        if status.state == "cancelled":
            reason = f"{name} was cancelled before its programs finished{scheduler_says}"
        else:
            reason = (
                f"{name} ended ({status.state}) without finishing its programs: the scheduler "
                f"ended it (time limit, node failure or cancellation){scheduler_says}"
            )
        raise _failure(_mark(record, run_dir, "failed", reason), run_dir, reason)
    failed = result.failed_step
    if failed is not None:
        stopped = failed.exit_code is None  # by a signal: the scheduler ended the job
        if stopped and status.state == "cancelled":
            reason = f"{name} was cancelled; {failed.name} was stopped"
        elif stopped and status.message:
            reason = (
                f"{name} was ended by {record.backend}: {status.message} ({failed.name} stopped)"
            )
        else:
            reason = f"{failed.name} failed in {name}: {failed.message}{scheduler_says}"
        _mark(record, run_dir, "failed", reason)
        raise TrainerError(
            reason,
            exit_code=failed.exit_code,
            workdir=run_dir,
            log_path=run_dir / next(s.log for s in _steps(run_dir) if s.name == failed.name),
            log_tail=failed.log_tail or log_tail(run_dir),
        )
    return result


def _steps(run_dir: Path) -> list[ProgramStep]:
    return JobSteps.model_validate_json((run_dir / JOB_STEPS_JSON).read_text()).steps


def _mark(
    record: BatchRecord, run_dir: Path, outcome: Literal["failed", "cancelled"], reason: str
) -> BatchRecord:
    marked = record.model_copy(update={"outcome": outcome, "reason": reason})
    marked.save(run_dir)
    return marked


def _failure(record: BatchRecord, run_dir: Path, reason: str) -> TrainerError:
    from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PACEMAKER_LOG

    return TrainerError(
        reason, workdir=run_dir, log_path=run_dir / PACEMAKER_LOG, log_tail=log_tail(run_dir)
    )


def log_tail(run_dir: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of pacemaker's log in ``run_dir`` (the job's own output if there is none)."""
    from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PACEMAKER_LOG

    for name in (PACEMAKER_LOG, JOB_OUTPUT):
        path = run_dir / name
        if path.exists() and path.stat().st_size > 0:
            with open(path, encoding="utf-8", errors="replace") as stream:
                return [line.rstrip("\n") for line in deque(stream, maxlen=lines)]
    return []
