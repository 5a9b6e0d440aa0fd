"""Batch fits through a real single-node SLURM (tests/cluster/start_slurm.sh)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mlip_autopipec.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_CHECKS,
    EXIT_OK,
    EXIT_TRAINING_FAILED,
    main,
)
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.rundir.claim import (
    claim_run_directory,
    read_manifest,
)
from mlip_autopipec.infrastructure.rundir.files import BATCH_JOB_JSON
from mlip_autopipec.infrastructure.rundir.records import BatchRecord

from ..conftest import TinyFit, interrupt_as_from_a_terminal

pytestmark = pytest.mark.cluster

#: Keeps the tests quick: the queue is asked every second.
POLL = 1.0


def _trainer(partition: str, **execution: object) -> dict[str, object]:
    settings = {
        "type": "slurm",
        "queue": partition,
        "time_limit": "00:10:00",
        "cpus": 1,
        "poll_seconds": POLL,
        **execution,
    }
    return {"type": "pacemaker", "cutoff": 5.0, "execution": settings}


def _in_squeue(job_id: str) -> bool:
    result = subprocess.run(
        ["squeue", "--noheader", "--jobs", job_id, "--format=%T"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and bool(result.stdout.strip())


def _record(potential_json: Path) -> dict[str, object]:
    """potential.json without what differs between two runs of the same fit."""
    record = json.loads(potential_json.read_text())
    record.pop("provenance")
    cost = record.pop("cost")  # estimated and timed anew by each run
    # A batch fit is estimated too, for the job's cores (this node is not where it runs).
    assert cost["estimate_method"] == "model"
    assert "for the batch job (cpus: 1)" in cost["estimate_note"]
    assert cost["estimated_s_per_iteration"] > 0  # the fake logs no iterations
    return record


@pytest.mark.requires_pacemaker  # the cost estimate builds the basis with pyace
def test_followed_and_detached_runs_end_alike(
    slurm: str,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    train_argv: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    trainer = _trainer(slurm, setup=["export FROM_SETUP=yes"])
    followed, detached = tmp_path / "followed", tmp_path / "detached"

    # Followed: train submits, follows the job and builds the potential.
    argv = train_argv(cu_pt_dataset, trainer)
    assert main([*argv, "--out", str(followed)]) == EXIT_OK
    out = capsys.readouterr().out
    assert str(followed / "potential.yace") in out and "test:" in out
    record = BatchRecord.load(followed)
    assert record.backend == "slurm" and record.job_id and record.outcome is None
    result = json.loads((followed / "job_result.json").read_text())
    assert [(step["name"], step["succeeded"]) for step in result["steps"]] == [
        ("pacemaker", True),
        ("pace_activeset", True),
    ]

    # Detached: train submits and exits; status answers; wait finishes the run.
    assert main([*argv, "--out", str(detached), "--detach"]) == EXIT_OK
    out = capsys.readouterr().out
    job_id = BatchRecord.load(detached).job_id
    assert f"job {job_id}" in out and f"mlip-autopipec wait {detached}" in out
    assert not (detached / "potential.json").exists()
    assert main(["status", str(detached)]) == EXIT_OK
    assert capsys.readouterr().out.split(":")[0] in {"pending", "running", "finished"}
    assert main(["wait", str(detached)]) == EXIT_OK
    assert str(detached / "potential.yace") in capsys.readouterr().out
    assert main(["status", str(detached)]) == EXIT_OK
    assert capsys.readouterr().out.startswith("finished")

    assert _record(detached / "potential.json") == _record(followed / "potential.json")
    for run in (followed, detached):
        assert (run / "report/mlip_autopipec/report.html").exists()
        assert (run / "output_potential.asi").exists()  # pace_activeset ran in the job
        # The job's programs wrote their logs in the run directory.
        assert "fake pacemaker done" in (run / "pacemaker.log").read_text()


def test_a_detached_run_is_finished_by_one_wait_with_its_fixed_test_set(
    slurm: str,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    train_argv: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    n = len(cu_pt_dataset)
    test_data = cu_pt_dataset.subset([0, 1, 2, 3, 4]).write(tmp_path / "test.extxyz")
    out = tmp_path / "run"
    argv = train_argv(cu_pt_dataset.subset(list(range(5, n))), _trainer(slurm), out)
    assert main([*argv, "--test-data", str(test_data), "--detach"]) == EXIT_OK
    manifest = read_manifest(out)
    assert manifest is not None and manifest["status"] == "submitted"
    capsys.readouterr()

    # The job owns the directory: no new train, and one wait at a time.
    assert main(argv) == EXIT_BAD_INPUT
    assert f"mlip-autopipec wait {out}" in capsys.readouterr().err
    with claim_run_directory(out, resume=True):  # as a first wait does
        assert main(["wait", str(out)]) == EXIT_BAD_INPUT
        assert "in use by another run" in capsys.readouterr().err
    assert not (out / "potential.json").exists()

    assert main(["wait", str(out)]) == EXIT_OK
    potential = Potential.load(out)
    assert potential.test_metrics is not None and potential.test_metrics.n_structures == 5
    assert (out / "test_predictions.npz").exists()  # the pickles were converted
    manifest = read_manifest(out)
    assert manifest is not None and manifest["status"] == "finished"


def test_a_detached_fit_ended_by_pacemakers_early_stopping_records_it(
    slurm: str,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    train_argv: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "early_stop")  # logs it after iteration 7
    out = tmp_path / "run"
    assert main([*train_argv(cu_pt_dataset, _trainer(slurm), out), "--detach"]) == EXIT_OK
    assert main(["wait", str(out)]) == EXIT_OK  # wait finishes the run: its own after-fit path
    fit_stop = Potential.load(out).fit_stop
    assert fit_stop is not None and fit_stop.early_stop and fit_stop.stopped_at_iteration == 7


@pytest.mark.requires_pacemaker  # the safety gate evaluates the potential with pyace
def test_the_safety_gate_holds_for_a_batch_run(
    slurm: str,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    train_argv: Callable[..., list[str]],
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "no_core")  # no repulsion below the data
    argv = [*train_argv(cu_pt_dataset, _trainer(slurm)), "--out"]
    with pytest.warns(UserWarning, match="FAILED its safety checks"):  # the report says so
        assert main([*argv, str(tmp_path / "r1")]) == EXIT_FAILED_CHECKS
    assert "FAILED its safety checks" in capsys.readouterr().err
    assert json.loads((tmp_path / "r1" / "potential.json").read_text())["checks_passed"] is False

    # Accepted at submission, honoured by the wait that finishes the run.
    assert main([*argv, str(tmp_path / "r2"), "--accept-failed-checks", "--detach"]) == EXIT_OK
    with pytest.warns(UserWarning, match="FAILED its safety checks"):
        assert main(["wait", str(tmp_path / "r2")]) == EXIT_OK


def test_bad_queue_is_an_error_before_anything_is_written(
    slurm: str,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    capsys: pytest.CaptureFixture[str],
    train_argv: Callable[..., list[str]],
) -> None:
    out = tmp_path / "run"
    code = main(train_argv(cu_pt_dataset, _trainer("no_such_queue"), out))
    assert code == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert "trainer.execution.queue" in error and "no_such_queue" in error and slurm in error
    assert not out.exists()


def test_a_failed_pacemaker_in_the_job_is_a_failed_run_with_its_log(
    slurm: str,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    train_argv: Callable[..., list[str]],
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "fail")  # 100 log lines, exit code 3
    out = tmp_path / "run"
    code = main(train_argv(cu_pt_dataset, _trainer(slurm), out))
    assert code == EXIT_TRAINING_FAILED
    error = capsys.readouterr().err
    assert "pacemaker failed with exit code 3" in error
    assert str(out / "pacemaker.log") in error and "log line 100" in error
    assert not (out / "potential.json").exists()
    assert not (out / "output_potential.asi").exists()  # the job stopped at the failure


def test_time_limit_kill_ends_as_a_failed_run_with_the_reason(
    slurm: str,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    train_argv: Callable[..., list[str]],
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "sleep")  # 120 s, beyond the 1-minute limit
    out = tmp_path / "run"
    code = main(train_argv(cu_pt_dataset, _trainer(slurm, time_limit="00:01:00"), out))
    assert code == EXIT_TRAINING_FAILED
    error = capsys.readouterr().err
    assert "time limit" in error
    assert not (out / "potential.json").exists()
    assert not (out / "potential.yace").exists()
    record = BatchRecord.load(out)
    assert record.outcome == "failed" and "time limit" in (record.reason or "")
    assert main(["status", str(out)]) == EXIT_TRAINING_FAILED
    assert capsys.readouterr().out.startswith("failed:")
    # A failed run is not finished by wait.
    assert main(["wait", str(out)]) == EXIT_TRAINING_FAILED


def test_ctrl_c_cancels_the_job(
    slurm: str,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    train_argv: Callable[..., list[str]],
) -> None:
    out = tmp_path / "run"
    environment = {**os.environ, "FAKE_PACEMAKER_MODE": "sleep"}
    command = [sys.executable, "-m", "mlip_autopipec.cli"]
    command += train_argv(cu_pt_dataset, _trainer(slurm), out)
    process = subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interrupt_as_from_a_terminal,
    )
    try:
        # Interrupt once the job is running: the fake pacemaker has started.
        log = out / "pacemaker.log"
        while process.poll() is None and "fake pacemaker starting" not in (
            log.read_text() if log.exists() else ""
        ):
            time.sleep(0.5)
        job_id = BatchRecord.load(out).job_id
        assert _in_squeue(job_id)
        name = subprocess.run(
            ["squeue", "--noheader", "--jobs", job_id, "--format=%j"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert name.stdout.strip() == "mlip-autopipec-run"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert f"cancelling slurm job {job_id}" in stderr
    assert not _in_squeue(job_id)
    record = BatchRecord.load(out)
    assert record.outcome == "cancelled"
    assert not (out / "potential.json").exists()
    assert (out / BATCH_JOB_JSON).exists()


def test_a_job_cancelled_by_the_user_ends_as_a_failed_run(
    slurm: str,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    train_argv: Callable[..., list[str]],
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "sleep")
    out = tmp_path / "run"
    argv = train_argv(cu_pt_dataset, _trainer(slurm), out)
    assert main([*argv, "--detach"]) == EXIT_OK
    job_id = BatchRecord.load(out).job_id
    log = out / "pacemaker.log"
    while "fake pacemaker starting" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.5)
    subprocess.run(["scancel", job_id], check=True)
    capsys.readouterr()
    assert main(["wait", str(out)]) == EXIT_TRAINING_FAILED
    assert f"slurm job {job_id} was cancelled" in capsys.readouterr().err
    assert not (out / "potential.json").exists()
    assert BatchRecord.load(out).outcome == "failed"
    # The directory takes a new run once the job has ended.
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "ok")
    assert main(argv) == EXIT_OK


def test_status_says_pending_while_the_node_is_busy(
    slurm: str,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    train_argv: Callable[..., list[str]],
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "sleep")
    cpus = subprocess.run(
        ["sinfo", "--noheader", "--partition", slurm, "--format=%c"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    argv = train_argv(cu_pt_dataset, _trainer(slurm, cpus=int(cpus)))  # a whole node each
    runs = [tmp_path / "first", tmp_path / "second"]
    for run in runs:
        assert main([*argv, "--out", str(run), "--detach"]) == EXIT_OK
    jobs = [BatchRecord.load(run).job_id for run in runs]
    try:
        log = runs[0] / "pacemaker.log"
        while "fake pacemaker starting" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.5)
        capsys.readouterr()
        assert main(["status", str(runs[0])]) == EXIT_OK
        assert capsys.readouterr().out.startswith(f"running: slurm job {jobs[0]}")
        assert main(["status", str(runs[1])]) == EXIT_OK
        assert capsys.readouterr().out.startswith(f"pending: slurm job {jobs[1]} is queued")
    finally:
        subprocess.run(["scancel", *jobs], check=True)


@pytest.mark.slow
@pytest.mark.requires_pacemaker
def test_a_real_fit_through_slurm_equals_the_local_fit(
    slurm: str, tmp_path: Path, tiny_fit: TinyFit
) -> None:
    from mlip_autopipec.config.config_model import parse_trainer_config
    from mlip_autopipec.infrastructure.trainer import create_trainer

    # The local fit is the shared one: the same config (one thread) and data, run here.
    local, dataset = tiny_fit.potential, tiny_fit.dataset
    assert tiny_fit.config["threads"] == 1
    execution = {"type": "slurm", "queue": slurm, "time_limit": "00:10:00", "cpus": 1}
    batch_config = parse_trainer_config(
        {**tiny_fit.config, "execution": {**execution, "poll_seconds": 1}}
    )
    batch = create_trainer(batch_config).train(dataset, tmp_path / "slurm")

    assert isinstance(batch, Potential) and batch.run_dir == (tmp_path / "slurm").resolve()
    assert BatchRecord.load(batch.run_dir).backend == "slurm"
    for ours, theirs in (
        (batch.train_metrics, local.train_metrics),
        (batch.test_metrics, local.test_metrics),
    ):
        assert ours is not None and theirs is not None
        assert ours.energy_rmse_mev_per_atom == pytest.approx(
            theirs.energy_rmse_mev_per_atom, rel=1e-3
        )
        assert ours.force_rmse_mev_per_angstrom == pytest.approx(
            theirs.force_rmse_mev_per_angstrom, rel=1e-3
        )
    atoms = dataset[0].atoms.copy()
    atoms.calc = batch.ase_calculator()
    on_cluster = atoms.get_potential_energy()
    atoms.calc = local.ase_calculator()
    assert on_cluster == pytest.approx(atoms.get_potential_energy(), abs=1e-6)
    assert batch.active_set_file == local.active_set_file
