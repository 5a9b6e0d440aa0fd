"""Batch jobs of a cluster's scheduler (SLURM, PBS, LSF): submit, ask for the state, cancel.

SLURM is driven directly, from argument lists (``job_script``: sbatch options as arguments, a
script of quoted words; squeue; scancel). PBS and LSF go through psij-python, which writes their
scripts from templates, with every value checked to need no quoting. The state of a job is
asked here, for every backend, so that a scheduler that does not answer is told apart from a job
that failed: a failing query is retried with doubling pauses and reported as "cannot reach the
scheduler" (state ``unreachable``); after ``execution.unreachable_after`` s of failures,
``SchedulerUnreachableError``. A job is never taken as ended because its state is unknown.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.errors import ConfigurationError, SchedulerUnreachableError, TrainerError
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.job_script import (
    JobRequest,
    check_plain,
    exit_code_file,
    sbatch_command,
    slurm_script,
)

if TYPE_CHECKING:
    import psij

__all__ = ["JobHandle", "JobRequest", "JobStatus", "Scheduler", "State"]

log = logging.getLogger(__name__)

#: The program each scheduler is driven with, to tell a user on the wrong machine what is missing.
SUBMIT_PROGRAMS = {"slurm": "sbatch", "pbs": "qsub", "lsf": "bsub"}
#: s a query of the scheduler may take before it counts as unanswered.
QUERY_TIMEOUT_S = 60.0
#: The longest pause between two queries of a scheduler that does not answer, s.
MAX_PAUSE_S = 60.0

State = Literal["queued", "running", "completed", "failed", "cancelled", "unreachable"]

#: squeue's state names (``%T``) as states of ours, with what a failed one means.
_SLURM_QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"}
_SLURM_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "SUSPENDED", "STOPPED"}
_SLURM_FAILED = {
    "TIMEOUT": "the job reached its time limit",
    "NODE_FAIL": "a node of the job failed (it is not requeued: the run ends as failed)",
    "BOOT_FAIL": "the node of the job failed to boot",
    "OUT_OF_MEMORY": "the job ran out of memory",
    "PREEMPTED": "the job was preempted",
    "DEADLINE": "the job reached its deadline",
    "FAILED": "",
    "SPECIAL_EXIT": "",
    "REVOKED": "",
}


@dataclass(frozen=True)
class JobHandle:
    """A submitted job, by the scheduler's id."""

    native_id: str


@dataclass(frozen=True)
class JobStatus:
    """What the scheduler says of a job: its state, exit code (when known) and its reason."""

    state: State
    exit_code: int | None = None
    message: str | None = None
    requeued: bool = False

    @property
    def final(self) -> bool:
        return self.state in {"completed", "failed", "cancelled"}


class Scheduler:
    """A cluster's scheduler (``execution.type``).

    The job script and its exit code file go into ``work_dir/<backend>``, which must be on the
    shared filesystem: another process asks about the job by id later and reads them.
    """

    def __init__(self, execution: BatchExecution, work_dir: Path, poll_seconds: float) -> None:
        self.execution = execution
        self.backend: str = getattr(execution, "type", "")
        self.work_dir = work_dir
        self.files_dir = work_dir / self.backend
        self.poll_seconds = poll_seconds
        self._psij: psij.JobExecutor | None = None
        self._failing_since: float | None = None
        self._next_query = 0.0
        self._pause = 0.0
        self._last_error = ""

    def check(self) -> None:
        """Raise ConfigurationError unless the scheduler answers here and knows the queue."""
        program = SUBMIT_PROGRAMS[self.backend]
        if shutil.which(program) is None:
            raise ConfigurationError(
                [
                    (
                        "trainer.execution.type",
                        f"{self.backend}: '{program}' is not on PATH; submit from a login node "
                        f"of a {self.backend} cluster (or use type: local)",
                    )
                ]
            )
        queue = self.execution.queue
        if queue is not None and queue not in self.queues():
            known = ", ".join(sorted(self.queues())) or "none"
            raise ConfigurationError(
                [
                    (
                        "trainer.execution.queue",
                        f"{self.backend} has no queue '{queue}' (queues here: {known})",
                    )
                ]
            )

    def queues(self) -> set[str]:
        """Names of the queues (SLURM partitions) the scheduler offers."""
        command = {
            "slurm": ["sinfo", "--noheader", "--format=%R"],
            "pbs": ["qstat", "-Q", "-f", "-F", "json"],
            "lsf": ["bqueues", "-o", "queue_name", "-noheader"],
        }[self.backend]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise TrainerError(
                f"cannot list the queues of {self.backend}: {result.stderr.strip()}",
                command=command,
                exit_code=result.returncode,
            )
        if self.backend == "pbs":
            import json

            return set(json.loads(result.stdout).get("Queue", {}))
        return {line.strip() for line in result.stdout.splitlines() if line.strip()}

    def submit(self, request: JobRequest) -> JobHandle:
        """Submit one job; its id is ``native_id``. Raises TrainerError if refused."""
        self.files_dir.mkdir(parents=True, exist_ok=True)
        if self.backend != "slurm":
            return self._submit_with_psij(request)
        script = self.files_dir / f"{request.name[:60]}.job"
        write_text_atomic(script, slurm_script(request, self.files_dir))
        command = sbatch_command(self.execution, request, script)
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=QUERY_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise TrainerError(
                f"slurm refused the job: {error}", command=command, workdir=request.directory
            ) from error
        if result.returncode != 0:
            raise TrainerError(
                f"slurm refused the job: {(result.stderr or result.stdout).strip()}",
                command=command,
                exit_code=result.returncode,
                workdir=request.directory,
            )
        job_id = result.stdout.strip().split(";")[0]
        log.info("submitted slurm job %s", job_id)
        return JobHandle(job_id)

    def attach(self, job_id: str) -> JobHandle:
        """The job of this id."""
        return JobHandle(job_id)

    def status(self, job: JobHandle, *, wait_s: float = 0.0, give_up: bool = True) -> JobStatus:
        """The job's state. A scheduler that does not answer gives ``unreachable`` (asked again
        within ``wait_s`` s, with pauses); with ``give_up``, SchedulerUnreachableError after
        ``execution.unreachable_after`` s of failures in a row."""
        deadline = time.monotonic() + wait_s
        while True:
            status = self._ask(job, give_up)
            remaining = deadline - time.monotonic()
            if status.state != "unreachable" or remaining <= 0:
                return status
            time.sleep(max(0.0, min(remaining, self._next_query - time.monotonic())))

    def cancel(self, job: JobHandle, *, wait_s: float = 30.0) -> JobStatus:
        """Cancel the job and wait (up to ``wait_s`` s) until the scheduler says it has ended."""
        command = {"slurm": ["scancel", job.native_id]}.get(self.backend)
        if command is None:
            command = self._executor().get_cancel_command(job.native_id)  # type: ignore[attr-defined]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:  # e.g. it ended meanwhile
            log.debug("cancel of job %s: %s", job.native_id, result.stderr.strip())
        deadline = time.monotonic() + wait_s
        status = self.status(job, give_up=False)
        while not status.final and time.monotonic() < deadline:
            time.sleep(min(1.0, self.poll_seconds))
            status = self.status(job, give_up=False)
        return status

    # -- asking ----------------------------------------------------------------------------------

    def _ask(self, job: JobHandle, give_up: bool) -> JobStatus:
        """One query (none during the pause after a failed one)."""
        now = time.monotonic()
        if self._failing_since is not None and now < self._next_query:
            return self._unreachable()
        command = self._status_command(job)
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=QUERY_TIMEOUT_S
            )
            answer, error = result.stdout, (result.stderr or result.stdout).strip()
            failed = result.returncode != 0
            if failed:
                error = f"{command[0]} exited with {result.returncode}: {error[-500:]}"
        except (OSError, subprocess.TimeoutExpired) as exception:
            answer, error, failed = "", f"{command[0]}: {exception}", True
        if failed:
            return self._failed_query(error, give_up)
        if self._failing_since is not None:
            log.warning("%s answers again", self.backend)
            self._failing_since, self._pause = None, 0.0
        return self._parse(job, answer)

    def _failed_query(self, error: str, give_up: bool) -> JobStatus:
        now = time.monotonic()
        self._last_error = error
        if self._failing_since is None:
            self._failing_since = now
            log.warning(
                "cannot reach the scheduler (%s): %s; asking again, with pauses of up to %.0f s",
                self.backend,
                error,
                MAX_PAUSE_S,
            )
        failing_for = now - self._failing_since
        if give_up and failing_for >= self.execution.unreachable_after:
            raise SchedulerUnreachableError(
                f"cannot reach the scheduler ({self.backend}) for {failing_for:.0f} s: {error}. "
                "The job was left alone and may still run; nothing was recorded: ask again "
                "later ('mlip-autopipec status' or 'wait' RUN_DIR)"
            )
        self._pause = min(MAX_PAUSE_S, max(self._pause * 2, self.poll_seconds))
        self._next_query = now + self._pause
        return self._unreachable()

    def _unreachable(self) -> JobStatus:
        return JobStatus("unreachable", message=f"cannot reach the scheduler: {self._last_error}")

    def _status_command(self, job: JobHandle) -> list[str]:
        if self.backend == "slurm":
            # All of the user's jobs, finished ones too: asking for one id fails once SLURM
            # has forgotten the job, and a failed query must mean "no answer".
            return ["squeue", "--noheader", "--me", "--states=all", "--format=%i|%T|%r"]
        command: list[str] = self._executor().get_status_command([job.native_id])  # type: ignore[attr-defined]
        return command

    def _parse(self, job: JobHandle, answer: str) -> JobStatus:
        if self.backend != "slurm":
            return self._parse_with_psij(job, answer)
        for line in answer.splitlines():
            job_id, _, rest = line.strip().partition("|")
            if job_id != job.native_id:
                continue
            state, _, reason = rest.partition("|")
            requeued = state.startswith("REQUEUE")
            if state in _SLURM_QUEUED:
                return JobStatus("queued", requeued=requeued)
            if state in _SLURM_RUNNING:
                return JobStatus("running")
            if state == "CANCELLED":
                return JobStatus("cancelled", self._exit_code(job))
            exit_code = self._exit_code(job)
            if state == "COMPLETED" and exit_code in (None, 0):
                return JobStatus("completed", exit_code)
            message = _SLURM_FAILED.get(state) or (reason if reason not in {"", "None"} else None)
            return JobStatus("failed", exit_code, message or None)
        return self._gone(job)

    def _gone(self, job: JobHandle) -> JobStatus:
        """A job the scheduler no longer lists: its end is told by the exit code file."""
        exit_code = self._exit_code(job)
        if exit_code == 0:
            return JobStatus("completed", 0)
        if exit_code is None:
            return JobStatus("failed", None, "the job left the queue without an exit code")
        return JobStatus("failed", exit_code)

    def _exit_code(self, job: JobHandle) -> int | None:
        path = exit_code_file(self.files_dir, job.native_id)
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    # -- PBS and LSF, through psij ---------------------------------------------------------------

    def _executor(self) -> psij.JobExecutor:
        if self._psij is None:
            import psij
            from psij.executors.batch.batch_scheduler_executor import (
                BatchSchedulerExecutorConfig,
            )

            config = BatchSchedulerExecutorConfig(
                work_directory=self.work_dir,
                # psij's own polling stays asleep: the state is asked here (``status``).
                queue_polling_interval=10**9,
                initial_queue_polling_delay=10**9,
                keep_files=True,
            )
            self._psij = psij.JobExecutor.get_instance(self.backend, config=config)
        return self._psij

    def _submit_with_psij(self, request: JobRequest) -> JobHandle:
        import psij

        check_plain(self.backend, request, self.work_dir)
        execution = self.execution
        resources = psij.ResourceSpecV1(
            node_count=execution.nodes,
            processes_per_node=1,
            cpu_cores_per_process=execution.cpus,
            gpu_cores_per_process=execution.gpus or None,
        )
        attributes = psij.JobAttributes(
            duration=execution.duration, queue_name=execution.queue, account=execution.account
        )
        spec = psij.JobSpec(
            executable=request.executable,
            arguments=list(request.arguments),
            directory=request.directory,
            name=request.name,
            environment=dict(request.environment),
            stdout_path=request.output,
            stderr_path=request.output,
            resources=resources,
            attributes=attributes,
            pre_launch=request.setup_script,
        )
        job = psij.Job(spec)
        try:
            self._executor().submit(job)
        except (psij.SubmitException, OSError) as error:
            raise TrainerError(
                f"{self.backend} refused the job: {str(error).strip()}", workdir=request.directory
            ) from error
        assert job.native_id is not None
        log.info("submitted %s job %s", self.backend, job.native_id)
        return JobHandle(job.native_id)

    def _parse_with_psij(self, job: JobHandle, answer: str) -> JobStatus:
        import psij

        states: dict[psij.JobState, State] = {
            psij.JobState.QUEUED: "queued",
            psij.JobState.ACTIVE: "running",
            psij.JobState.COMPLETED: "completed",
            psij.JobState.FAILED: "failed",
            psij.JobState.CANCELED: "cancelled",
        }
        found = self._executor().parse_status_output(0, answer).get(job.native_id)  # type: ignore[attr-defined]
        if found is None or found.state not in states:
            return self._gone(job)
        state = states[found.state]
        exit_code = self._exit_code(job) if state in {"completed", "failed"} else None
        if state == "completed" and exit_code not in (None, 0):
            state = "failed"
        return JobStatus(state, exit_code, found.message)
