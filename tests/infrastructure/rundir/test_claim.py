"""Run directories: ours or empty, one run at a time, killed runs recognised."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from mlip_autopipec.errors import OutputError
from mlip_autopipec.infrastructure.rundir.claim import (
    claim_run_directory,
    is_ours,
    read_manifest,
    refuse_to_overwrite,
)
from mlip_autopipec.infrastructure.rundir.files import (
    BATCH_JOB_JSON,
    JOB_RESULT_JSON,
    LOCK_FILE,
    MANIFEST,
)


def test_a_new_directory_is_claimed_and_its_files_recorded(tmp_path: Path) -> None:
    run_dir = tmp_path / "new" / "run"
    with claim_run_directory(run_dir) as run:
        manifest = read_manifest(run_dir)
        assert manifest is not None and manifest["status"] == "running"
        assert manifest["pid"] == os.getpid()
        (run.path / "result.txt").write_text("42\n")
    manifest = read_manifest(run_dir)
    assert manifest is not None and manifest["status"] == "finished"
    assert manifest["files"] == ["result.txt"]
    assert is_ours(run_dir)


def test_a_failed_run_is_recorded_as_failed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), claim_run_directory(tmp_path / "run"):
        raise RuntimeError("the fit failed")
    manifest = read_manifest(tmp_path / "run")
    assert manifest is not None and manifest["status"] == "failed"


def test_a_foreign_directory_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(OutputError, match=r"not made by mlip-autopipec \(it holds notes.txt\)"):
        claim_run_directory(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_second_claim_names_the_holder(tmp_path: Path) -> None:
    with claim_run_directory(tmp_path / "run"):
        with pytest.raises(OutputError) as caught:
            claim_run_directory(tmp_path / "run")
        assert f"in use by another run (PID {os.getpid()} on" in str(caught.value)
        assert "started 20" in str(caught.value)
    with claim_run_directory(tmp_path / "run"):  # released: free again
        pass


def test_a_directory_handed_over_to_a_batch_job_is_taken_back_only_to_finish_it(
    tmp_path: Path,
) -> None:
    with claim_run_directory(tmp_path / "second") as run:
        (run.path / "batch_job.json").write_text("{}\n")
        run.hand_over()
        assert read_manifest(run.path)["status"] == "submitted"  # type: ignore[index]
    manifest = read_manifest(tmp_path / "second")
    assert manifest is not None and manifest["status"] == "submitted"  # not "finished"
    before = (tmp_path / "second" / MANIFEST).read_text()
    with pytest.raises(OutputError, match=r"holds a batch job submitted from it.*wait"):
        claim_run_directory(tmp_path / "second")
    assert (tmp_path / "second" / MANIFEST).read_text() == before  # nothing written
    with (
        claim_run_directory(tmp_path / "second", resume=True),
        pytest.raises(OutputError, match="in use by another run"),
    ):
        claim_run_directory(tmp_path / "second", resume=True)
    manifest = read_manifest(tmp_path / "second")
    assert manifest is not None and manifest["status"] == "finished"


def test_a_rerun_replaces_only_the_results_its_predecessor_wrote(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with claim_run_directory(run_dir) as run:
        (run.path / "ours.yaml").write_text("stale\n")
    (run_dir / "theirs.yaml").write_text("the user's\n")

    with pytest.raises(OutputError, match=r"theirs\.yaml, which mlip-autopipec did not write"):
        claim_run_directory(run_dir, replaces=("ours.yaml", "theirs.yaml"))
    assert (run_dir / "ours.yaml").exists() and (run_dir / "theirs.yaml").exists()

    with claim_run_directory(run_dir, replaces=("ours.yaml",)):
        assert not (run_dir / "ours.yaml").exists()
    assert (run_dir / "theirs.yaml").read_text() == "the user's\n"


def test_a_killed_run_is_reported_and_its_results_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_FILE).write_text("")
    killed = {"status": "running", "pid": 999999, "host": "node7", "started_at": "then"}
    (run_dir / MANIFEST).write_text(json.dumps(killed | {"started_at_epoch": time.time() - 60}))
    (run_dir / "output_potential.yaml").write_text("half written\n")  # written while it ran

    with (
        caplog.at_level(logging.WARNING),
        claim_run_directory(run_dir, replaces=("output_potential.yaml",)) as run,
    ):
        assert run.previous is not None and run.previous["status"] == "killed"
    assert "(PID 999999 on node7, started then) was killed before it finished" in caplog.text
    assert not (run_dir / "output_potential.yaml").exists()


def test_the_result_a_cancelled_job_writes_as_it_dies_is_ours(tmp_path: Path) -> None:
    """scancel, then wait records the failure and lists the files; the job's own result comes
    after: a new fit replaces it (the job's run directory, and only that file)."""
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError), claim_run_directory(run_dir, resume=True) as run:
        (run.path / BATCH_JOB_JSON).write_text("{}\n")
        raise RuntimeError("the job was cancelled")
    (run_dir / JOB_RESULT_JSON).write_text("{}\n")  # after the manifest was written
    (run_dir / "potential.yace").write_text("the user's\n")

    with pytest.raises(OutputError, match=r"holds potential\.yace, which mlip-autopipec did"):
        claim_run_directory(run_dir, replaces=(JOB_RESULT_JSON, "potential.yace"))
    (run_dir / "potential.yace").unlink()
    with claim_run_directory(run_dir, replaces=(JOB_RESULT_JSON,)):
        assert not (run_dir / JOB_RESULT_JSON).exists()


def test_a_late_job_result_without_a_batch_job_is_not_ours(tmp_path: Path) -> None:
    with claim_run_directory(tmp_path / "run"):
        pass
    (tmp_path / "run" / JOB_RESULT_JSON).write_text("{}\n")
    with pytest.raises(OutputError, match=r"holds job_result\.json, which mlip-autopipec did"):
        claim_run_directory(tmp_path / "run", replaces=(JOB_RESULT_JSON,))


def test_refuse_to_overwrite(tmp_path: Path) -> None:
    existing = tmp_path / "selected.extxyz"
    existing.write_text("x")
    with pytest.raises(OutputError, match="already exists"):
        refuse_to_overwrite(existing, overwrite=False)
    refuse_to_overwrite(existing, overwrite=True)
    refuse_to_overwrite(tmp_path / "new.extxyz", overwrite=False)
    with pytest.raises(OutputError, match="is a directory"):
        refuse_to_overwrite(tmp_path, overwrite=True)
