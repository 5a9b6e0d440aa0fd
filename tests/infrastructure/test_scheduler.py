"""The scheduler is asked, not assumed: a fake ``squeue``/``sbatch`` first on PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mlip_autopipec.config.execution import SlurmExecution
from mlip_autopipec.errors import SchedulerUnreachableError
from mlip_autopipec.infrastructure.job_script import JobRequest
from mlip_autopipec.infrastructure.scheduler import JobHandle, Scheduler

from ..conftest import write_executable

#: A fake squeue: checks it is asked for all of the user's jobs, answers FAKE_SQUEUE_ANSWER
#: (a file), or fails as squeue does when slurmctld does not answer.
FAKE_SQUEUE = """
import os, sys
assert sys.argv[1:] == ["--noheader", "--me", "--states=all", "--format=%i|%T|%r"], sys.argv
with open(os.environ["FAKE_SQUEUE_CALLS"], "a") as calls:
    calls.write("call\\n")
answer = open(os.environ["FAKE_SQUEUE_ANSWER"]).read()
if answer == "unreachable":
    print("squeue: error: Unable to contact slurm controller (connect failure)", file=sys.stderr)
    sys.exit(1)
print(answer, end="")
"""


@pytest.fixture
def squeue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file whose text the fake squeue answers with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_executable(bin_dir / "squeue", FAKE_SQUEUE)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    answer = tmp_path / "answer"
    monkeypatch.setenv("FAKE_SQUEUE_ANSWER", str(answer))
    monkeypatch.setenv("FAKE_SQUEUE_CALLS", str(tmp_path / "calls"))
    return answer


def _scheduler(tmp_path: Path, unreachable_after: float = 600.0) -> Scheduler:
    execution = SlurmExecution(time_limit="01:00:00", unreachable_after=unreachable_after)
    return Scheduler(execution, tmp_path / "scheduler", poll_seconds=0.01)


@pytest.mark.parametrize(
    ("line", "state", "message"),
    [
        ("12|RUNNING|None", "running", None),
        ("12|PENDING|Resources", "queued", None),
        ("12|TIMEOUT|TimeLimit", "failed", "time limit"),
        ("12|NODE_FAIL|NodeDown", "failed", "a node of the job failed"),
        ("12|CANCELLED|None", "cancelled", None),
    ],
)
def test_the_state_is_read_from_squeue(
    squeue: Path, tmp_path: Path, line: str, state: str, message: str | None
) -> None:
    squeue.write_text(f"1|RUNNING|None\n{line}\n")
    status = _scheduler(tmp_path).status(JobHandle("12"))
    assert status.state == state
    assert (message is None and status.message is None) or message in (status.message or "")


def test_a_requeued_job_is_queued_and_says_so(squeue: Path, tmp_path: Path) -> None:
    squeue.write_text("12|REQUEUED|None\n")
    status = _scheduler(tmp_path).status(JobHandle("12"))
    assert status.state == "queued" and status.requeued and not status.final


def test_a_job_squeue_forgot_ended_as_its_exit_code_file_says(squeue: Path, tmp_path: Path) -> None:
    squeue.write_text("")  # the job has left SLURM's memory
    scheduler = _scheduler(tmp_path)
    assert scheduler.status(JobHandle("12")).state == "failed"  # no exit code: ended by SLURM
    scheduler.files_dir.mkdir(parents=True)
    (scheduler.files_dir / "12.ec").write_text("0\n")
    assert scheduler.status(JobHandle("12")).state == "completed"
    (scheduler.files_dir / "12.ec").write_text("3\n")
    status = scheduler.status(JobHandle("12"))
    assert (status.state, status.exit_code) == ("failed", 3)


def test_lost_contact_is_unreachable_never_failed_and_retried_with_pauses(
    squeue: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    squeue.write_text("unreachable")
    scheduler = _scheduler(tmp_path)
    job = JobHandle("12")
    status = scheduler.status(job)
    assert status.state == "unreachable" and not status.final
    assert "Unable to contact slurm controller" in (status.message or "")
    assert "cannot reach the scheduler (slurm)" in caplog.text
    # During the pause after a failure squeue is not asked again.
    calls = tmp_path / "calls"
    assert scheduler.status(job).state == "unreachable"
    assert len(calls.read_text().splitlines()) == 1
    # Asked again within wait_s, with pauses; contact back: the job's real state.
    assert scheduler.status(job, wait_s=0.2).state == "unreachable"
    assert len(calls.read_text().splitlines()) > 1
    squeue.write_text("12|RUNNING|None\n")
    assert scheduler.status(job, wait_s=5.0).state == "running"
    assert "slurm answers again" in caplog.text


def test_a_scheduler_that_stays_unreachable_is_an_error_that_says_so(
    squeue: Path, tmp_path: Path
) -> None:
    squeue.write_text("unreachable")
    scheduler = _scheduler(tmp_path, unreachable_after=0.05)
    with pytest.raises(SchedulerUnreachableError, match="cannot reach the scheduler") as caught:
        scheduler.status(JobHandle("12"), wait_s=30.0)
    assert "may still run" in str(caught.value)


def test_a_missing_squeue_is_unreachable_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue at all
    assert _scheduler(tmp_path).status(JobHandle("12")).state == "unreachable"


def test_sbatch_gets_the_script_and_its_options_as_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_executable(
        bin_dir / "sbatch",
        """
        import shlex, sys
        assert "--no-requeue" in sys.argv and "--parsable" in sys.argv, sys.argv
        [chdir] = [a.removeprefix("--chdir=") for a in sys.argv if a.startswith("--chdir=")]
        assert chdir.endswith("/run $(id)"), chdir
        assert f"cd -- {shlex.quote(chdir)} " in open(sys.argv[-1]).read()
        print("77;cluster")
        """,
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    run_dir = tmp_path / "run $(id)"
    request = JobRequest(sys.executable, ["-m", "x", str(run_dir)], run_dir, run_dir / "log")
    assert _scheduler(tmp_path).submit(request) == JobHandle("77")
