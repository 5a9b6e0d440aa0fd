"""The real SLURM cluster of the tests (tests/cluster/start_slurm.sh): skip without one, except
in CI (CI=true or MLIP_REQUIRE_SLURM=1), where a missing cluster is a failure. One test at a
time submits to it, also when pytest-xdist runs the suite in several workers."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

START_SCRIPT = Path(__file__).with_name("start_slurm.sh")


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
