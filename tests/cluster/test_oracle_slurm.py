"""The oracle as batch jobs on the real SLURM: one job per chunk, labels into the cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from mlip_autopipec.config.execution import SlurmExecution
from mlip_autopipec.config.oracle import OracleConfig
from mlip_autopipec.infrastructure.oracle_jobs import JOB_JSON, label
from mlip_autopipec.oracle.emt import label_with_emt

from ..conftest import kill_9_once, label_in_a_child, rattled_copper
from ..oracle.fake_calculators import calls

pytestmark = pytest.mark.cluster

FAKE = Path(__file__).parents[1] / "oracle" / "fake_calculators.py"
#: The labelling function ``label_in_a_child`` calls: one batch job per chunk.
LABEL_IN_JOBS = "mlip_autopipec.infrastructure.oracle_jobs:label"


def _structures() -> list:
    structures = rattled_copper(3)
    structures.append(bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1)))
    return structures


def _execution(partition: str) -> SlurmExecution:
    return SlurmExecution(queue=partition, time_limit="00:05:00", cpus=1, poll_seconds=1.0)


def test_emt_labels_in_two_jobs_then_from_the_cache(slurm: str, tmp_path: Path) -> None:
    structures = _structures()
    config = OracleConfig(
        calculator="ase.calculators.emt.EMT", chunk_size=2, execution=_execution(slurm)
    )
    seen: list[tuple[int, int]] = []

    result = label(structures, config, tmp_path / "cache", progress=lambda *a: seen.append(a))

    assert result.n_calls == 4 and result.failures == [] and seen[-1] == (4, 4)
    expected = label_with_emt(structures)
    for got, want in zip(result.dataset, expected, strict=True):
        assert got.energy == want.energy
        np.testing.assert_array_equal(got.forces, want.forces)
    records = sorted((tmp_path / "cache" / "jobs").glob(f"*/chunk_*/{JOB_JSON}"))
    assert len(records) == 2
    assert [len(json.loads(r.read_text())["structures"]) for r in records] == [2, 2]
    assert "done: 2 labelled, 0 failed" in (records[0].parent / "job.log").read_text()

    again = label(structures, config, tmp_path / "cache")
    assert again.n_calls == 0 and again.n_cached == 4
    assert len(list((tmp_path / "cache" / "jobs").glob("*/chunk_*"))) == 2  # no new job


def test_a_failure_in_a_job_is_recorded(slurm: str, tmp_path: Path) -> None:
    config = OracleConfig(
        calculator=f"{FAKE}:FlakyEMT",
        parameters={"count_file": str(tmp_path / "calls"), "raise_for": [2]},
        chunk_size=3,
        max_failure_fraction=0.5,
        execution=_execution(slurm),
    )
    result = label(_structures(), config, tmp_path / "cache")
    assert [f.index for f in result.failures] == [3]
    assert "SCF not converged" in result.failures[0].reason
    assert result.indices == [0, 1, 2]


def test_a_killed_labelling_is_resumed_by_following_its_running_job(
    slurm: str, tmp_path: Path
) -> None:
    config = OracleConfig(
        calculator=f"{FAKE}:FlakyEMT",
        parameters={"count_file": str(tmp_path / "calls"), "sleep_for": [4], "sleep_s": 3},
        chunk_size=3,
        execution=_execution(slurm),
    )
    (tmp_path / "config.json").write_text(config.model_dump_json())
    child = label_in_a_child(LABEL_IN_JOBS, 3, tmp_path / "config.json", tmp_path / "cache")
    jobs = tmp_path / "cache" / "jobs"
    too_soon = "the labelling ended before its job was submitted"
    # kill -9 once its job is submitted: the job goes on.
    kill_9_once(child, lambda: bool(list(jobs.glob(f"*/chunk_*/{JOB_JSON}"))), too_soon)

    result = label(_structures()[:3], config, tmp_path / "cache")

    assert len(result.dataset) == 3 and result.failures == []
    assert result.n_cached == 0  # the job was still running: its labels came in while followed
    assert len(list(jobs.glob("*/chunk_*"))) == 1  # followed, not submitted again
    assert calls(tmp_path / "calls") == [4, 4, 4]  # each structure computed once
