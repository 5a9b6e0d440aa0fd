"""The real SLURM cluster of the tests (tests/cluster/start_slurm.sh): skip without one, except
in CI (CI=true or MLIP_REQUIRE_SLURM=1), where a missing cluster is a failure. One test at a
time submits to it, also when pytest-xdist runs the suite in several workers."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlip_autopipec.cli import EXIT_OK
from mlip_autopipec.infrastructure.rundir.records import BatchRecord

from ..conftest import TrainCli

START_SCRIPT = Path(__file__).with_name("start_slurm.sh")
#: s; the queue is asked every second, to keep the tests quick.
POLL_SECONDS = 1.0


def slurm_partition() -> str | None:
    """The default partition of a SLURM that answers here, or None."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return None
    try:
        result = subprocess.run(
            ["sinfo", "--noheader", "--format=%P"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    partitions = result.stdout.split()
    if result.returncode != 0 or not partitions:
        return None
    default = [name for name in partitions if name.endswith("*")]
    return (default or partitions)[0].rstrip("*")


@pytest.fixture(scope="session")
def slurm() -> str:
    """The partition to submit to; skips (fails in CI) when no SLURM is reachable."""
    partition = slurm_partition()
    if partition is None:
        reason = f"no SLURM reachable (sinfo/sbatch); start one as root with {START_SCRIPT}"
        if os.environ.get("CI") == "true" or os.environ.get("MLIP_REQUIRE_SLURM") == "1":
            pytest.fail(f"{reason}: CI requires the cluster tests")
        pytest.skip(reason)
    return partition


@pytest.fixture(autouse=True)
def one_slurm_test_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """An exclusive lock for the test's whole run: the one-node cluster is shared by the
    pytest-xdist workers (``make test``), and a test's job would queue behind another's (the
    tests of a busy node expect the node to themselves)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # all workers'
    with (shared / "slurm_tests.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def slurm_trainer(partition: str, **execution: object) -> dict[str, object]:
    """The trainer section of a pacemaker fit (cutoff 5 Å) run as a SLURM job on ``partition``
    with one core and a 10-minute limit, the queue polled every second; ``execution`` adds or
    replaces settings of ``trainer.execution``."""
    settings = {
        "type": "slurm",
        "queue": partition,
        "time_limit": "00:10:00",
        "cpus": 1,
        "poll_seconds": POLL_SECONDS,
        **execution,
    }
    return {"type": "pacemaker", "cutoff": 5.0, "execution": settings}


def in_squeue(job_id: str) -> bool:
    """SLURM still lists the job (pending or running)."""
    result = subprocess.run(
        ["squeue", "--noheader", "--jobs", job_id, "--format=%T"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and bool(result.stdout.strip())


def submit_detached(cli: TrainCli, trainer: dict[str, object], out: Path, *options: str) -> str:
    """``train --detach`` into ``out`` (it must exit 0): the id of the job it submitted."""
    assert cli.train(trainer, *options, "--detach", out=out) == EXIT_OK
    return BatchRecord.load(out).job_id


def wait_for_the_fake_pacemaker(
    run_dir: Path, process: subprocess.Popen[str] | None = None
) -> None:
    """Return once the job's fake pacemaker has started (its log in ``run_dir`` says so), or
    once ``process`` (the CLI following the job) has ended."""
    log = run_dir / "pacemaker.log"
    while process is None or process.poll() is None:
        if "fake pacemaker starting" in (log.read_text() if log.exists() else ""):
            return
        time.sleep(0.5)
