"""The oracle as batch jobs (SLURM, PBS, LSF through psij): one job per chunk of structures.

Each chunk is written to ``<jobs_dir>/<batch>/chunk_NNN/chunk.json``; its job runs
``python -m mlip_autopipec.oracle chunk.json``, which writes each structure's labels into the
label cache as soon as they are known. Here the jobs are followed by watching the cache (live
progress, the failure limit applied as results come) and the scheduler (a job that ends without
labelling its structures fails them, with its log named). Ctrl-C or the failure limit cancels
the jobs still queued or running. The cache and jobs_dir must be on a filesystem the compute
nodes share.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ase import Atoms

from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.config.oracle import OracleConfig
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.scheduler import JobHandle, JobRequest, Scheduler
from mlip_autopipec.oracle.cache import LabelCache, StructurePayload
from mlip_autopipec.oracle.chunk import Chunk
from mlip_autopipec.oracle.labelling import LabelResult, OnDone, Progress, label_structures

log = logging.getLogger(__name__)

CHUNK_JSON = "chunk.json"
JOB_JSON = "job.json"
JOB_LOG = "job.log"
SETUP_SCRIPT = "job_setup.sh"
#: psij's files (job scripts, exit codes) of every chunk's job.
SCHEDULER_DIR = "scheduler"
#: s between looks at the cache while the jobs run (the scheduler is asked every poll_seconds).
_WATCH_S = 1.0


def label(
    structures: Sequence[Atoms],
    config: OracleConfig,
    cache_dir: Path,
    progress: Progress | None = None,
    *,
    jobs_dir: Path | None = None,
    retry_failures: bool = False,
) -> LabelResult:
    """``oracle.labelling.label_structures`` where ``config.execution`` says: worker processes
    on this machine, or one batch job per ``chunk_size`` structures (files in ``jobs_dir``,
    default ``cache_dir/jobs``)."""
    execution = config.execution
    runner = None
    if isinstance(execution, BatchExecution):
        runner = BatchOracleRunner(execution, Path(jobs_dir or Path(cache_dir) / "jobs"))
    return label_structures(
        structures, config, cache_dir, progress, retry_failures=retry_failures, runner=runner
    )


@dataclass
class _Job:
    scheduler: Scheduler
    directory: Path
    payloads: list[StructurePayload]
    job: JobHandle
    job_id: str


class BatchOracleRunner:
    """The oracle's Runner that labels through batch jobs of ``execution``.

    Jobs submitted by an earlier call (a loop killed while they ran) that are still queued or
    running, for this oracle and some of the same structures, are followed instead of
    submitting those structures again.
    """

    def __init__(self, execution: BatchExecution, jobs_dir: Path) -> None:
        self.execution = execution
        self.jobs_dir = Path(jobs_dir).absolute()

    def __call__(
        self,
        payloads: Sequence[StructurePayload],
        config: OracleConfig,
        cache: LabelCache,
        on_done: OnDone,
    ) -> None:
        # An entry already there (a failure asked to be retried) counts once it is rewritten.
        before = {p.hash: _stamp(cache.path(p.hash)) for p in payloads}
        jobs: list[_Job] = []
        try:
            jobs += self._running_jobs(payloads, config)
            adopted = {p.hash for job in jobs for p in job.payloads}
            todo = [p for p in payloads if p.hash not in adopted]
            if todo:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
                batch_dir = self.jobs_dir / f"{stamp}_{uuid.uuid4().hex[:6]}"
                scheduler = self._scheduler(batch_dir)
                size = config.chunk_size
                for number, start in enumerate(range(0, len(todo), size)):
                    chunk = list(todo[start : start + size])
                    jobs.append(self._submit(scheduler, config, cache, chunk, batch_dir, number))
            _follow(jobs, cache, before, on_done)
        except KeyboardInterrupt:
            print("\ninterrupted: cancelling the oracle's jobs ...", file=sys.stderr, flush=True)
            _cancel(jobs)
            raise

    def _scheduler(self, batch_dir: Path) -> Scheduler:
        return Scheduler(self.execution, batch_dir / SCHEDULER_DIR, self.execution.poll_seconds)

    def _running_jobs(
        self, payloads: Sequence[StructurePayload], config: OracleConfig
    ) -> list[_Job]:
        """Jobs of earlier calls, still queued or running, that label some of ``payloads``."""
        wanted = {p.hash: p for p in payloads}
        found: list[_Job] = []
        for record_path in sorted(self.jobs_dir.glob(f"*/chunk_*/{JOB_JSON}")):
            try:
                record = json.loads(record_path.read_text())
                hashes, job_id = list(record["structures"]), str(record["job_id"])
                mine = record["oracle"] == config.identity()
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not a record of ours
            claimed = {p.hash for job in found for p in job.payloads}
            shared = [wanted[h] for h in hashes if h in wanted and h not in claimed]
            if not mine or not shared:
                continue
            scheduler = self._scheduler(record_path.parent.parent)
            job = scheduler.attach(job_id)
            if scheduler.status(job, wait_s=3 * self.execution.poll_seconds).final:
                continue  # ended, or the scheduler does not know it (any more)
            log.info("following oracle job %s of an earlier labelling", job_id)
            found.append(_Job(scheduler, record_path.parent, shared, job, job_id))
        return found

    def _submit(
        self,
        scheduler: Scheduler,
        config: OracleConfig,
        cache: LabelCache,
        payloads: list[StructurePayload],
        batch_dir: Path,
        number: int,
    ) -> _Job:
        directory = batch_dir / f"chunk_{number:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        chunk_file = Chunk(config=config, cache_dir=cache.root.parent, structures=payloads).save(
            directory / CHUNK_JSON
        )
        setup = None
        if self.execution.setup:
            setup = directory / SETUP_SCRIPT
            write_text_atomic(setup, "\n".join(self.execution.setup) + "\n")
        request = JobRequest(
            executable=sys.executable,
            arguments=["-m", "mlip_autopipec.oracle", str(chunk_file)],
            directory=directory,
            output=directory / JOB_LOG,
            name=f"mlip-oracle-{number:03d}",
            environment={"PYTHONUNBUFFERED": "1"},
            setup_script=setup,
        )
        job = scheduler.submit(request)
        record = {
            "backend": scheduler.backend,
            "job_id": job.native_id,
            "submitted_at": datetime.now(UTC).isoformat(),
            "oracle": config.identity(),
            "structures": [p.hash for p in payloads],
        }
        write_text_atomic(directory / JOB_JSON, json.dumps(record, indent=2) + "\n")
        log.info("oracle chunk %d (%d structures): job %s", number, len(payloads), job.native_id)
        return _Job(scheduler, directory, payloads, job, job.native_id)


def _follow(
    jobs: list[_Job], cache: LabelCache, before: dict[str, int | None], on_done: OnDone
) -> None:
    """Pass each structure's entry on as it appears; a job that ends fails what it left."""
    waiting = {id(job): list(job.payloads) for job in jobs}
    while any(waiting.values()):
        for job in jobs:
            left = waiting[id(job)]
            if not left:
                continue
            status = job.scheduler.status(job.job)  # before the cache: nothing is missed
            for payload in list(left):
                if _stamp(cache.path(payload.hash)) == before[payload.hash]:
                    continue
                entry = cache.get(payload.hash)
                if entry is None:
                    continue
                left.remove(payload)
                if not on_done(payload, entry, None):
                    _cancel(jobs)
                    return
            if status.final and left:
                said = f" ({status.message})" if status.message else ""
                reason = (
                    f"{job.scheduler.backend} job {job.job_id} ended ({status.state}{said}) "
                    f"without labelling it; its log: {job.directory / JOB_LOG}"
                )
                for payload in left:
                    on_done(payload, None, reason)
                left.clear()
        time.sleep(_WATCH_S if any(waiting.values()) else 0)


def _stamp(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _cancel(jobs: list[_Job]) -> None:
    for job in jobs:
        if not job.scheduler.status(job.job).final:
            job.scheduler.cancel(job.job)
            log.info("cancelled oracle job %s", job.job_id)
