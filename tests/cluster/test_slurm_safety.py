"""A batch job is data on a real SLURM: hostile paths, an account with a newline, a scheduler
that does not answer, a job that cannot be requeued (tests/cluster/start_slurm.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mlip_autopipec.cli import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_SCHEDULER_UNREACHABLE,
    main,
)
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.infrastructure.rundir.records import BatchRecord

from ..conftest import write_executable
from .test_slurm import _in_squeue, _trainer

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("name", ["run_$(id>PWNED)", "my run ünï"])
def test_a_run_directory_of_any_name_fits_in_batch_as_locally_and_runs_nothing(
    slurm: str,
    cu_pt_dataset: Dataset,
    train_argv: Callable[..., list[str]],
    tmp_path: Path,
    fake_pacemaker: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    train = train_argv(cu_pt_dataset, _trainer(slurm, setup=["export FROM_SETUP=yes"]))
    out = tmp_path / name
    argv = [*train, "--out", str(out)]
    assert main(argv) == EXIT_OK
    assert str(out / "potential.yace") in capsys.readouterr().out
    assert (out / "potential.json").exists() and (out / "output_potential.asi").exists()
    assert "fake pacemaker done" in (out / "pacemaker.log").read_text()
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    assert not Path("/PWNED").exists()


def test_a_newline_in_the_account_is_refused_before_submission(
    slurm: str,
    cu_pt_dataset: Dataset,
    train_argv: Callable[..., list[str]],
    tmp_path: Path,
    fake_pacemaker: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    train = train_argv(cu_pt_dataset, _trainer(slurm, account="proj\n#SBATCH --wrap=id"))
    out = tmp_path / "run"
    code = main([*train, "--out", str(out)])
    assert code == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert "trainer.execution.account" in error and "'\\n'" in error
    assert not out.exists()


def test_lost_contact_with_slurm_is_not_a_failed_job_and_finish_waits(
    slurm: str,
    cu_pt_dataset: Dataset,
    train_argv: Callable[..., list[str]],
    tmp_path: Path,
    fake_pacemaker: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "sleep")
    train = train_argv(cu_pt_dataset, _trainer(slurm, unreachable_after=3.0))
    out = tmp_path / "run"
    argv = [*train, "--out", str(out)]
    assert main([*argv, "--detach"]) == EXIT_OK
    job_id = BatchRecord.load(out).job_id
    try:
        log = out / "pacemaker.log"
        while "fake pacemaker starting" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.5)
        # slurmctld stops answering: squeue fails as it does then.
        bin_dir = tmp_path / "unreachable_bin"
        bin_dir.mkdir()
        write_executable(
            bin_dir / "squeue",
            """
            import sys
            print("squeue: error: Unable to contact slurm controller (connect failure)",
                  file=sys.stderr)
            sys.exit(1)
            """,
        )
        real_path = os.environ["PATH"]
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{real_path}")
        capsys.readouterr()
        assert main(["wait", str(out)]) == EXIT_SCHEDULER_UNREACHABLE
        error = capsys.readouterr().err
        assert "cannot reach the scheduler (slurm)" in error and "may still run" in error
        assert "failed" not in error
        assert BatchRecord.load(out).outcome is None  # nothing recorded
        assert main(["status", str(out)]) == EXIT_SCHEDULER_UNREACHABLE
        assert capsys.readouterr().out.startswith("unknown: cannot reach the scheduler")
        assert main(["finish", str(out)]) == EXIT_BAD_INPUT  # the job may still run
        assert "not finished" in capsys.readouterr().err
        assert not (out / "potential.json").exists()
        monkeypatch.setenv("PATH", real_path)  # contact is back
        assert _in_squeue(job_id)  # the job was left alone
        assert main(["status", str(out)]) == EXIT_OK
        assert capsys.readouterr().out.startswith(f"running: slurm job {job_id}")
    finally:
        subprocess.run(["scancel", job_id], check=False)


def test_a_job_is_never_requeued_to_start_the_fit_over(
    slurm: str,
    cu_pt_dataset: Dataset,
    train_argv: Callable[..., list[str]],
    tmp_path: Path,
    fake_pacemaker: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A node failure would requeue it and pacemaker would start again from iteration 0 over the
    # interim potential; submitted with --no-requeue, a node failure ends it as a failed run.
    # (Setting the shared test node down would end every other job on it: not done here.)
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "sleep")
    train = train_argv(cu_pt_dataset, _trainer(slurm))
    out = tmp_path / "run"
    argv = [*train, "--out", str(out)]
    assert main([*argv, "--detach"]) == EXIT_OK
    job_id = BatchRecord.load(out).job_id
    try:
        show = subprocess.run(
            ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
        )
        assert "Requeue=0" in show.stdout.split()
        requeue = subprocess.run(
            ["scontrol", "requeue", job_id], capture_output=True, text=True, check=False
        )
        assert requeue.returncode != 0 and "disabled" in requeue.stderr
    finally:
        subprocess.run(["scancel", job_id], check=False)


def test_a_followed_fit_prints_no_traceback(
    slurm: str,
    cu_pt_dataset: Dataset,
    train_argv: Callable[..., list[str]],
    tmp_path: Path,
    fake_pacemaker: Path,
) -> None:
    # psij's queue-polling thread made every followed fit print threading's _after_fork
    # traceback; SLURM is asked directly now.
    train = train_argv(cu_pt_dataset, _trainer(slurm))
    out = tmp_path / "run_$(id>PWNED)"
    command = [sys.executable, "-m", "mlip_autopipec.cli", *train, "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    assert "Traceback" not in result.stderr and "_after_fork" not in result.stderr
    assert (out / "potential.json").exists() and not list(tmp_path.rglob("PWNED"))
