"""Batch jobs through psij-python (SLURM, PBS, LSF): submit, attach by id, state, cancel.

psij writes the scheduler's script from a job description (executable, argument list,
directory, environment, resources, duration, queue, account) and reads the queue's answers;
nothing here writes ``#SBATCH`` lines or parses the scheduler's text output.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal

import psij
from psij.executors.batch.batch_scheduler_executor import BatchSchedulerExecutorConfig

from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.errors import ConfigurationError, TrainerError

log = logging.getLogger(__name__)

#: The program each scheduler is driven with, to tell a user on the wrong machine what is missing.
SUBMIT_PROGRAMS = {"slurm": "sbatch", "pbs": "qsub", "lsf": "bsub"}

State = Literal["queued", "running", "completed", "failed", "cancelled", "unknown"]

_STATES: dict[psij.JobState, State] = {
    psij.JobState.NEW: "unknown",
    psij.JobState.QUEUED: "queued",
    psij.JobState.ACTIVE: "running",
    psij.JobState.COMPLETED: "completed",
    psij.JobState.FAILED: "failed",
    psij.JobState.CANCELED: "cancelled",
}


@dataclass(frozen=True)
class JobRequest:
    """One program with its arguments, run in ``directory`` on a compute node."""

    executable: str
    arguments: list[str]
    directory: Path
    output: Path = field(metadata={"doc": "file for the program's stdout and stderr"})
    name: str = "mlip-autopipec"
    environment: dict[str, str] = field(default_factory=dict)
    setup_script: Path | None = None


@dataclass(frozen=True)
class JobStatus:
    """What the scheduler says of a job: its state, exit code (when known) and its reason."""

    state: State
    exit_code: int | None = None
    message: str | None = None

    @property
    def final(self) -> bool:
        return self.state in {"completed", "failed", "cancelled"}


class Scheduler:
    """A cluster's scheduler (``execution.type``) through psij.

    psij's own files (the generated job script, the exit code file) go into ``work_dir``, which
    must be on the shared filesystem: another process attaches to the job by id later and reads
    them. They are kept, so that any number of processes can attach.
    """

    def __init__(self, execution: BatchExecution, work_dir: Path, poll_seconds: float) -> None:
        self.execution = execution
        self.backend: str = getattr(execution, "type", "")
        self.work_dir = work_dir
        config = BatchSchedulerExecutorConfig(
            work_directory=work_dir,
            queue_polling_interval=poll_seconds,  # type: ignore[arg-type]  # psij sleeps on it
            initial_queue_polling_delay=0,
            keep_files=True,
        )
        self._executor = psij.JobExecutor.get_instance(self.backend, config=config)

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

    def submit(self, request: JobRequest) -> psij.Job:
        """Submit one job; its id is ``job.native_id``. Raises TrainerError if refused."""
        execution = self.execution
        resources = psij.ResourceSpecV1(
            node_count=execution.nodes,
            processes_per_node=1,
            cpu_cores_per_process=execution.cpus,
            gpu_cores_per_process=execution.gpus or None,
        )
        attributes = psij.JobAttributes(
            duration=execution.duration,
            queue_name=execution.queue,
            account=execution.account,
            # psij's SLURM script names the job after its file; this gives it our name.
            custom_attributes={"slurm.job-name": request.name} if self.backend == "slurm" else None,
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
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._executor.submit(job)
        except (psij.SubmitException, OSError) as error:
            raise TrainerError(
                f"{self.backend} refused the job: {str(error).strip()}", workdir=request.directory
            ) from error
        assert job.native_id is not None
        log.info("submitted %s job %s", self.backend, job.native_id)
        return job

    def attach(self, job_id: str) -> psij.Job:
        """The job of this id, followed from now on (its state is known after the first poll)."""
        job = psij.Job()
        self._executor.attach(job, job_id)
        return job

    def status(self, job: psij.Job, *, wait_s: float = 0.0) -> JobStatus:
        """The job's state; waits up to ``wait_s`` s for a first answer after attaching."""
        deadline = time.monotonic() + wait_s
        while job.status.state == psij.JobState.NEW and time.monotonic() < deadline:
            time.sleep(0.2)
        status = job.status
        return JobStatus(_STATES[status.state], status.exit_code, status.message)

    def cancel(self, job: psij.Job, *, wait_s: float = 30.0) -> JobStatus:
        """Cancel the job and wait (up to ``wait_s`` s) until the scheduler says it has ended."""
        try:
            self._executor.cancel(job)
        except psij.SubmitException as error:  # it ended meanwhile
            log.debug("cancel of job %s: %s", job.native_id, error)
        job.wait(timeout=timedelta(seconds=wait_s))
        return self.status(job)
