"""A fit whose compute part runs as one batch job: submit, follow, finish, and what it is doing.

The cheap steps stay on the login node: checks, reference energies, selection, the data file and
input.yaml before the job; metadata, ``.yace``, dimer check, report after it. The job runs the
trainer's compute steps, pacemaker and then pace_activeset, as a local fit runs them
(``BatchRunner`` is the batch StepRunner; ``batch/node.py`` runs the steps on the node) in the
run directory, which must be on a filesystem shared with the compute nodes. ``batch_job.json``
records the backend, the job id, the submission time and everything the post-processing needs,
so that ``mlip-autopipec wait`` in another process ends a detached run as a followed one ends.

The run directory is claimed (``rundir.claim``) before anything is written. A followed run
holds its lock through submission, following and post-processing; a detached run hands the
directory over to its job (manifest ``submitted``, lock released), and ``wait`` takes the lock
back before it follows the job, so that only one process finishes a run.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, Potential, load_finished_run
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.rundir.claim import claim_run_directory
from mlip_autopipec.infrastructure.rundir.files import (
    BATCH_JOB_JSON,
    JOB_OUTPUT,
    JOB_RESULT_JSON,
    JOB_STEPS_JSON,
    PACEMAKER_LOG,
    REPLACED,
    SCHEDULER_DIR,
    SETUP_SCRIPT,
    TEST_SET,
    TRAINING_SET,
)
from mlip_autopipec.infrastructure.rundir.records import BatchRecord, PendingRun, check_data_files
from mlip_autopipec.infrastructure.scheduler import JobRequest, JobStatus, Scheduler
from mlip_autopipec.infrastructure.trainer.after_fit import FitEnd
from mlip_autopipec.infrastructure.trainer.batch.node import JobSteps
from mlip_autopipec.infrastructure.trainer.plan import PreparedRun
from mlip_autopipec.infrastructure.trainer.programs.profile import (
    ProgramProfile,
    StepRunner,
    show_step,
    thread_environment,
)
from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink
from mlip_autopipec.infrastructure.trainer.programs.steps import JobResult, ProgramStep

if TYPE_CHECKING:
    from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PacemakerTrainer

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 40
#: s between reads of the log and of the job's state while following; the scheduler itself is
#: asked every ``execution.poll_seconds``.
_FOLLOW_STEP_S = 1.0


def job_environment(config: TrainerConfig, execution: BatchExecution) -> dict[str, str]:
    """Threads and GPUs for pacemaker on the node: the job's cores, its GPUs or none.

    With ``gpus > 0`` CUDA_VISIBLE_DEVICES is left to the scheduler, which sets it to the GPUs
    it allocated; with ``gpus: 0`` CUDA is hidden, as ``gpu_devices: ''`` does locally.
    """
    environment = thread_environment(config.threads or execution.cpus)
    environment["PYTHONUNBUFFERED"] = "1"
    if execution.gpus == 0:
        environment["CUDA_VISIBLE_DEVICES"] = "-1"
    return environment


def scheduler_for(
    execution: BatchExecution, run_dir: Path, poll_s: float | None = None
) -> Scheduler:
    return Scheduler(execution, run_dir / SCHEDULER_DIR, poll_s or execution.poll_seconds)


class BatchLauncher:
    """The compute steps of a fit run as one batch job (the trainer's launcher of a batch
    execution, chosen by ``create_trainer``)."""

    remote = True

    def __init__(self, progress: ProgressSink | None = None) -> None:
        self.progress = progress

    def check(self, config: TrainerConfig, workdir: Path) -> None:
        """The scheduler and its queue answer (before anything is written)."""
        execution = config.execution
        if not isinstance(execution, BatchExecution):
            raise ValueError("a batch job needs a batch execution (slurm, pbs or lsf)")
        scheduler_for(execution, workdir).check()

    def runner(self, config: TrainerConfig, run: PendingRun, profile: ProgramProfile) -> StepRunner:
        return BatchRunner(config, run, self.progress)


class BatchRunner:
    """Runs a fit's compute steps as one batch job: the StepRunner (``profile``) of a batch
    execution. The steps go to ``job_steps.json``; on the compute node the job runs them with
    the same code as a local fit (``batch_job.run_steps``); their result comes back here.

    ``run`` is what the post-processing needs, recorded in ``batch_job.json`` with the job.
    """

    def __init__(
        self, config: TrainerConfig, run: PendingRun, progress: ProgressSink | None = None
    ) -> None:
        execution = config.execution
        if not isinstance(execution, BatchExecution):
            raise ValueError("a batch job needs a batch execution (slurm, pbs or lsf)")
        self.config = config
        self.execution = execution
        self.run = run
        self.progress = progress

    def run_steps(self, steps: Sequence[ProgramStep], workdir: Path) -> JobResult:
        """Submit the job and follow it to its end (the caller holds ``workdir``'s lock)."""
        return follow(self.submit(steps, workdir), workdir, self.progress)

    def submit(self, steps: Sequence[ProgramStep], run_dir: Path) -> BatchRecord:
        """Write the job's steps and the user's setup lines, submit the job; its record is
        saved in ``run_dir``."""
        job_steps = JobSteps(steps=list(steps), time_limit_s=self.config.time_limit_seconds)
        write_text_atomic(run_dir / JOB_STEPS_JSON, job_steps.model_dump_json(indent=2) + "\n")
        setup = None
        if self.execution.setup:
            setup = run_dir / SETUP_SCRIPT
            write_text_atomic(setup, "\n".join(self.execution.setup) + "\n")
        pacemaker_log = run_dir / PACEMAKER_LOG
        log_offset = pacemaker_log.stat().st_size if pacemaker_log.exists() else 0
        request = JobRequest(
            executable=sys.executable,
            arguments=["-m", "mlip_autopipec.infrastructure.trainer.batch.entry", str(run_dir)],
            directory=run_dir,
            output=run_dir / JOB_OUTPUT,
            name=f"mlip-autopipec-{run_dir.name}",
            environment=job_environment(self.config, self.execution),
            setup_script=setup,
        )
        scheduler = scheduler_for(self.execution, run_dir)
        with show_step(self.progress, f"submitting to {self.execution.type}"):
            job = scheduler.submit(request)
        assert job.native_id is not None
        record = BatchRecord(
            backend=self.execution.type,
            job_id=job.native_id,
            submitted_at=datetime.now(UTC),
            queue=self.execution.queue,
            config=self.config,
            run=self.run,
            log_offset=log_offset,
        )
        record.save(run_dir)
        return record


def submit(
    trainer: PacemakerTrainer,
    dataset: Dataset,
    workdir: Path,
    *,
    test_dataset: Dataset | None = None,
) -> Path:
    """Prepare the run directory and submit the job (``train --detach``); the directory is
    handed over to the job (manifest ``submitted``, lock released). Returns it."""
    checked = trainer.check_inputs(dataset, test_dataset, workdir)
    with claim_run_directory(workdir, replaces=REPLACED) as run:
        prepared = trainer.prepare(checked, run.path)
        runner = BatchRunner(trainer.config, prepared.run, trainer.progress)
        runner.submit(trainer.compute_steps(checked.profile, prepared), run.path)
        run.hand_over()
    return run.path


def wait(trainer: PacemakerTrainer, run_dir: Path) -> Potential:
    """Follow the job of ``run_dir`` to its end, then build the potential on this machine.

    Takes the run directory's lock first: a second ``wait`` is refused (OutputError) while
    one follows the job. Ctrl-C cancels the job (and says so). A job that failed or was
    ended by the scheduler raises TrainerError with the reason, and is recorded as failed.
    The structures written for the fit are read from their safe copies (extxyz), never from
    pacemaker's pickles, once checked against their hashes in the record (OutputError naming
    a changed file; the job's results stay in the directory).
    """
    run_dir = Path(run_dir).absolute()
    if (run_dir / POTENTIAL_JSON).exists():
        return load_finished_run(run_dir)
    BatchRecord.load(run_dir)  # FileNotFoundError when there is no batch job to follow
    with claim_run_directory(run_dir, resume=True) as run:
        record = BatchRecord.load(run.path)  # under the lock: as the last process left it
        if record.outcome is not None:
            raise _failure(record, run.path, record.reason or record.outcome)
        result = follow(record, run.path, trainer.progress)
        # The safe copies read below must be the structures the job fitted (as --previous,
        # train --resume and finish check them).
        check_data_files(run.path, record.run.provenance, BATCH_JOB_JSON)
        prepared = PreparedRun(
            run.path,
            record.run,
            Dataset.read(run.path / TRAINING_SET),
            Dataset.read(run.path / TEST_SET) if record.run.fixed_test_set else None,
        )
        # The estimate made before submitting, beside what the job's pacemaker log shows.
        return trainer.after_fit(prepared, FitEnd(result), trainer.profile())


def follow(record: BatchRecord, run_dir: Path, progress: ProgressSink | None) -> JobResult:
    """Follow the job of ``record`` to its end, passing pacemaker's log on to ``progress``;
    its result, or TrainerError (recorded) when it failed. Ctrl-C cancels the job."""
    scheduler = scheduler_for(record.execution, run_dir)
    job = scheduler.attach(record.job_id)
    name = f"{record.backend} job {record.job_id}"
    tail = _LogTail(run_dir / PACEMAKER_LOG, record.log_offset, progress)
    shown: str | None = None
    try:
        with show_step(progress, f"fitting (pacemaker) in {name}"):
            while True:
                status = scheduler.status(job)
                if status.state != shown and status.state != "unreachable":
                    if status.requeued or (shown == "running" and status.state == "queued"):
                        log.warning("%s was requeued by %s", name, record.backend)
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


class _LogTail:
    """Passes the lines a program appends to its log file on to ``on_line``."""

    def __init__(self, path: Path, offset: int, on_line: ProgressSink | None) -> None:
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
    return TrainerError(
        reason, workdir=run_dir, log_path=run_dir / PACEMAKER_LOG, log_tail=log_tail(run_dir)
    )


def log_tail(run_dir: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of pacemaker's log in ``run_dir`` (the job's own output if there is none)."""
    for name in (PACEMAKER_LOG, JOB_OUTPUT):
        path = run_dir / name
        if path.exists() and path.stat().st_size > 0:
            with open(path, encoding="utf-8", errors="replace") as stream:
                return [line.rstrip("\n") for line in deque(stream, maxlen=lines)]
    return []
