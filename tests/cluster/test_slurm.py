"""Batch fits through a real single-node SLURM (tests/cluster/start_slurm.sh)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlip_autopipec.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_CHECKS,
    EXIT_OK,
    EXIT_TRAINING_FAILED,
    main,
)
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.rundir.claim import (
    claim_run_directory,
    read_manifest,
)
from mlip_autopipec.infrastructure.rundir.files import BATCH_JOB_JSON
from mlip_autopipec.infrastructure.rundir.records import BatchRecord

from ..conftest import TinyFit, TrainCli, interrupt_as_from_a_terminal
from .conftest import in_squeue, slurm_trainer, submit_detached, wait_for_the_fake_pacemaker

pytestmark = pytest.mark.cluster


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
    slurm: str, cli: TrainCli, fake_pacemaker: Path
) -> None:
    trainer = slurm_trainer(slurm, setup=["export FROM_SETUP=yes"])
    followed, detached = cli.tmp_path / "followed", cli.tmp_path / "detached"

    # Followed: train submits, follows the job and builds the potential.
    assert cli.train(trainer, out=followed) == EXIT_OK
    out = cli.printed()
    assert str(followed / "potential.yace") in out and "test:" in out
    record = BatchRecord.load(followed)
    assert record.backend == "slurm" and record.job_id and record.outcome is None
    result = json.loads((followed / "job_result.json").read_text())
    assert [(step["name"], step["succeeded"]) for step in result["steps"]] == [
        ("pacemaker", True),
        ("pace_activeset", True),
    ]

    # Detached: train submits and exits; status answers; wait finishes the run.
    job_id = submit_detached(cli, trainer, detached)
    out = cli.printed()
    assert f"job {job_id}" in out and f"mlip-autopipec wait {detached}" in out
    assert not (detached / "potential.json").exists()
    assert main(["status", str(detached)]) == EXIT_OK
    assert cli.printed().split(":")[0] in {"pending", "running", "finished"}
    assert main(["wait", str(detached)]) == EXIT_OK
    assert str(detached / "potential.yace") in cli.printed()
    assert main(["status", str(detached)]) == EXIT_OK
    assert cli.printed().startswith("finished")

    assert _record(detached / "potential.json") == _record(followed / "potential.json")
    for run in (followed, detached):
        assert (run / "report/mlip_autopipec/report.html").exists()
        assert (run / "output_potential.asi").exists()  # pace_activeset ran in the job
        # The job's programs wrote their logs in the run directory.
        assert "fake pacemaker done" in (run / "pacemaker.log").read_text()


def test_a_detached_run_is_finished_by_one_wait_with_its_fixed_test_set(
    slurm: str, cli: TrainCli, fake_pacemaker: Path
) -> None:
    dataset, out = cli.dataset, cli.out
    test_data = dataset.subset([0, 1, 2, 3, 4]).write(cli.tmp_path / "test.extxyz")
    argv = cli.arguments(
        slurm_trainer(slurm), out, data=dataset.subset(list(range(5, len(dataset))))
    )
    assert main([*argv, "--test-data", str(test_data), "--detach"]) == EXIT_OK
    manifest = read_manifest(out)
    assert manifest is not None and manifest["status"] == "submitted"
    cli.capsys.readouterr()

    # The job owns the directory: no new train, and one wait at a time.
    assert main(argv) == EXIT_BAD_INPUT
    assert f"mlip-autopipec wait {out}" in cli.error()
    with claim_run_directory(out, resume=True):  # as a first wait does
        assert main(["wait", str(out)]) == EXIT_BAD_INPUT
        assert "in use by another run" in cli.error()
    assert not (out / "potential.json").exists()

    assert main(["wait", str(out)]) == EXIT_OK
    potential = Potential.load(out)
    assert potential.test_metrics is not None and potential.test_metrics.n_structures == 5
    assert (out / "test_predictions.npz").exists()  # the pickles were converted
    manifest = read_manifest(out)
    assert manifest is not None and manifest["status"] == "finished"


def test_a_detached_fit_ended_by_pacemakers_early_stopping_records_it(
    slurm: str, cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "early_stop")  # logs it after iteration 7
    out = cli.out
    submit_detached(cli, slurm_trainer(slurm), out)
    assert main(["wait", str(out)]) == EXIT_OK  # wait finishes the run: its own after-fit path
    fit_stop = Potential.load(out).fit_stop
    assert fit_stop is not None and fit_stop.early_stop and fit_stop.stopped_at_iteration == 7


@pytest.mark.requires_pacemaker  # the safety gate evaluates the potential with pyace
def test_the_safety_gate_holds_for_a_batch_run(
    slurm: str, cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "no_core")  # no repulsion below the data
    first, second = cli.tmp_path / "r1", cli.tmp_path / "r2"
    with pytest.warns(UserWarning, match="FAILED its safety checks"):  # the report says so
        assert cli.train(slurm_trainer(slurm), out=first) == EXIT_FAILED_CHECKS
    assert "FAILED its safety checks" in cli.error()
    assert json.loads((first / "potential.json").read_text())["checks_passed"] is False

    # Accepted at submission, honoured by the wait that finishes the run.
    submit_detached(cli, slurm_trainer(slurm), second, "--accept-failed-checks")
    with pytest.warns(UserWarning, match="FAILED its safety checks"):
        assert main(["wait", str(second)]) == EXIT_OK


def test_bad_queue_is_an_error_before_anything_is_written(
    slurm: str, cli: TrainCli, fake_pacemaker: Path
) -> None:
    assert cli.train(slurm_trainer("no_such_queue")) == EXIT_BAD_INPUT
    error = cli.error()
    assert "trainer.execution.queue" in error and "no_such_queue" in error and slurm in error
    assert not cli.out.exists()


def test_a_failed_pacemaker_in_the_job_is_a_failed_run_with_its_log(
    slurm: str, cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "fail")  # 100 log lines, exit code 3
    out = cli.out
    assert cli.train(slurm_trainer(slurm)) == EXIT_TRAINING_FAILED
    error = cli.error()
    assert "pacemaker failed with exit code 3" in error
    assert str(out / "pacemaker.log") in error and "log line 100" in error
    assert not (out / "potential.json").exists()
    assert not (out / "output_potential.asi").exists()  # the job stopped at the failure


def test_time_limit_kill_ends_as_a_failed_run_with_the_reason(
    slurm: str, cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "sleep")  # 120 s, beyond the 1-minute limit
    out = cli.out
    assert cli.train(slurm_trainer(slurm, time_limit="00:01:00")) == EXIT_TRAINING_FAILED
    error = cli.error()
    assert "time limit" in error
    assert not (out / "potential.json").exists()
    assert not (out / "potential.yace").exists()
    record = BatchRecord.load(out)
    assert record.outcome == "failed" and "time limit" in (record.reason or "")
    assert main(["status", str(out)]) == EXIT_TRAINING_FAILED
    assert cli.printed().startswith("failed:")
    # A failed run is not finished by wait.
    assert main(["wait", str(out)]) == EXIT_TRAINING_FAILED


def test_ctrl_c_cancels_the_job(slurm: str, cli: TrainCli, fake_pacemaker: Path) -> None:
    out = cli.out
    environment = {**os.environ, "FAKE_PACEMAKER_MODE": "sleep"}
    command = [sys.executable, "-m", "mlip_autopipec.cli"]
    command += cli.arguments(slurm_trainer(slurm), out)
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
        wait_for_the_fake_pacemaker(out, process)
        job_id = BatchRecord.load(out).job_id
        assert in_squeue(job_id)
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
    assert not in_squeue(job_id)
    record = BatchRecord.load(out)
    assert record.outcome == "cancelled"
    assert not (out / "potential.json").exists()
    assert (out / BATCH_JOB_JSON).exists()


def test_a_job_cancelled_by_the_user_ends_as_a_failed_run(
    slurm: str, cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "sleep")
    out = cli.out
    argv = cli.arguments(slurm_trainer(slurm), out)
    assert main([*argv, "--detach"]) == EXIT_OK
    job_id = BatchRecord.load(out).job_id
    wait_for_the_fake_pacemaker(out)
    subprocess.run(["scancel", job_id], check=True)
    cli.capsys.readouterr()
    assert main(["wait", str(out)]) == EXIT_TRAINING_FAILED
    assert f"slurm job {job_id} was cancelled" in cli.error()
    assert not (out / "potential.json").exists()
    assert BatchRecord.load(out).outcome == "failed"
    # The directory takes a new run once the job has ended.
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "ok")
    assert main(argv) == EXIT_OK


def test_status_says_pending_while_the_node_is_busy(
    slurm: str, cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "sleep")
    cpus = subprocess.run(
        ["sinfo", "--noheader", "--partition", slurm, "--format=%c"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    trainer = slurm_trainer(slurm, cpus=int(cpus))  # a whole node each
    runs = [cli.tmp_path / "first", cli.tmp_path / "second"]
    jobs = [submit_detached(cli, trainer, run) for run in runs]
    try:
        wait_for_the_fake_pacemaker(runs[0])
        cli.capsys.readouterr()
        assert main(["status", str(runs[0])]) == EXIT_OK
        assert cli.printed().startswith(f"running: slurm job {jobs[0]}")
        assert main(["status", str(runs[1])]) == EXIT_OK
        assert cli.printed().startswith(f"pending: slurm job {jobs[1]} is queued")
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
