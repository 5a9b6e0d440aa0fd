"""A batch job is data on a real SLURM: hostile paths, an account with a newline, a scheduler
that does not answer, a job that cannot be requeued (tests/cluster/start_slurm.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlip_autopipec.cli import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_SCHEDULER_UNREACHABLE,
    main,
)
from mlip_autopipec.infrastructure.rundir.records import BatchRecord

from ..conftest import TrainCli, write_executable
from .conftest import in_squeue, slurm_trainer, submit_detached, wait_for_the_fake_pacemaker

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("name", ["run_$(id>PWNED)", "my run ünï"])
def test_a_run_directory_of_any_name_fits_in_batch_as_locally_and_runs_nothing(
    slurm: str, cli: TrainCli, fake_pacemaker: Path, name: str
) -> None:
    out = cli.tmp_path / name
    assert cli.train(slurm_trainer(slurm, setup=["export FROM_SETUP=yes"]), out=out) == EXIT_OK
    assert str(out / "potential.yace") in cli.printed()
    assert (out / "potential.json").exists() and (out / "output_potential.asi").exists()
    assert "fake pacemaker done" in (out / "pacemaker.log").read_text()
    assert not list(cli.tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    assert not Path("/PWNED").exists()


def test_a_newline_in_the_account_is_refused_before_submission(
    slurm: str, cli: TrainCli, fake_pacemaker: Path
) -> None:
    trainer = slurm_trainer(slurm, account="proj\n#SBATCH --wrap=id")
    assert cli.train(trainer) == EXIT_BAD_INPUT
    error = cli.error()
    assert "trainer.execution.account" in error and "'\\n'" in error
    assert not cli.out.exists()


def test_lost_contact_with_slurm_is_not_a_failed_job_and_finish_waits(
    slurm: str, cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "sleep")
    out = cli.out
    job_id = submit_detached(cli, slurm_trainer(slurm, unreachable_after=3.0), out)
    try:
        wait_for_the_fake_pacemaker(out)
        # slurmctld stops answering: squeue fails as it does then.
        bin_dir = cli.tmp_path / "unreachable_bin"
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
        cli.capsys.readouterr()
        assert main(["wait", str(out)]) == EXIT_SCHEDULER_UNREACHABLE
        error = cli.error()
        assert "cannot reach the scheduler (slurm)" in error and "may still run" in error
        assert "failed" not in error
        assert BatchRecord.load(out).outcome is None  # nothing recorded
        assert main(["status", str(out)]) == EXIT_SCHEDULER_UNREACHABLE
        assert cli.printed().startswith("unknown: cannot reach the scheduler")
        assert main(["finish", str(out)]) == EXIT_BAD_INPUT  # the job may still run
        assert "not finished" in cli.error()
        assert not (out / "potential.json").exists()
        monkeypatch.setenv("PATH", real_path)  # contact is back
        assert in_squeue(job_id)  # the job was left alone
        assert main(["status", str(out)]) == EXIT_OK
        assert cli.printed().startswith(f"running: slurm job {job_id}")
    finally:
        subprocess.run(["scancel", job_id], check=False)


def test_a_job_is_never_requeued_to_start_the_fit_over(
    slurm: str, cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A node failure would requeue it and pacemaker would start again from iteration 0 over the
    # interim potential; submitted with --no-requeue, a node failure ends it as a failed run.
    # (Setting the shared test node down would end every other job on it: not done here.)
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "sleep")
    job_id = submit_detached(cli, slurm_trainer(slurm), cli.out)
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
    slurm: str, cli: TrainCli, fake_pacemaker: Path
) -> None:
    # psij's queue-polling thread made every followed fit print threading's _after_fork
    # traceback; SLURM is asked directly now.
    out = cli.tmp_path / "run_$(id>PWNED)"
    command = [sys.executable, "-m", "mlip_autopipec.cli"]
    command += cli.arguments(slurm_trainer(slurm), out)
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cli.tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    assert "Traceback" not in result.stderr and "_after_fork" not in result.stderr
    assert (out / "potential.json").exists() and not list(cli.tmp_path.rglob("PWNED"))
