"""What a batch run is doing, for ``mlip-autopipec status``: pending, running, finished, failed."""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.domain_models.potential import POTENTIAL_JSON
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.infrastructure.pacemaker.log import ProgressParser
from mlip_autopipec.infrastructure.rundir.files import PACEMAKER_LOG
from mlip_autopipec.infrastructure.rundir.records import BatchRecord
from mlip_autopipec.infrastructure.trainer.batch.runner import job_result, log_tail, scheduler_for


def describe(run_dir: Path) -> tuple[str, str]:
    """What the run of ``run_dir`` is doing: (state, text) for ``mlip-autopipec status``.

    state is ``pending``, ``running``, ``finished`` (the potential is built, or the job ended
    and ``wait`` builds it) or ``failed``.
    """
    run_dir = Path(run_dir).resolve()
    if (run_dir / POTENTIAL_JSON).exists():
        return "finished", f"finished: the potential is in {run_dir / POTENTIAL_JSON}"
    record = BatchRecord.load(run_dir)
    name = f"{record.backend} job {record.job_id}"
    submitted = f"submitted {record.submitted_at:%Y-%m-%d %H:%M:%S} UTC"
    if record.outcome is not None:
        return "failed", _with_tail(f"failed: {record.reason}", run_dir)
    scheduler = scheduler_for(record.execution, run_dir, poll_s=1.0)
    status = scheduler.status(scheduler.attach(record.job_id), wait_s=10.0, give_up=False)
    if status.state == "unreachable":
        return "unknown", f"unknown: {status.message}; {name} may still run ({submitted})"
    if status.state == "queued":
        return "pending", f"pending: {name} is queued ({submitted})"
    if status.state == "running":
        line = last_progress(run_dir / PACEMAKER_LOG, record.log_offset)
        return "running", f"running: {name} ({submitted})\n  {line}"
    try:
        job_result(record, run_dir, status)
    except TrainerError as error:
        return "failed", _with_tail(f"failed: {error.message}", run_dir)
    return "finished", (
        f"finished: {name} has ended; 'mlip-autopipec wait {run_dir}' builds the potential"
    )


def _with_tail(text: str, run_dir: Path) -> str:
    tail = log_tail(run_dir, lines=15)
    return "\n".join(
        [text, *(["  last log lines:"] if tail else []), *(f"    | {t}" for t in tail)]
    )


def last_progress(log_path: Path, offset: int = 0) -> str:
    """The latest iteration, loss and RMSEs of the fit whose log is ``log_path``."""
    if not log_path.exists():
        return "pacemaker has not started yet"
    parser = ProgressParser()
    latest = None
    with open(log_path, encoding="utf-8", errors="replace") as stream:
        stream.seek(offset)
        for line in stream:
            event = parser.feed(line.rstrip("\n"))
            if event is not None and event.subset == "train" and event.iteration is not None:
                latest = event
    if latest is None:
        return "pacemaker is preparing the fit (no iteration yet)"
    text = f"iteration {latest.iteration}"
    if latest.loss is not None:
        text += f" loss {latest.loss:.1e}"
    if latest.energy_rmse_mev_per_atom is not None and latest.force_rmse_mev_per_angstrom:
        text += (
            f" | train E {latest.energy_rmse_mev_per_atom:.1f} meV/atom "
            f"F {latest.force_rmse_mev_per_angstrom:.1f} meV/Å"
        )
    return text
