"""The batch job as data: the SLURM script run by bash as the node runs it, without a scheduler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlip_autopipec.config.execution import PbsExecution, SlurmExecution
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.job_script import (
    JobRequest,
    check_plain,
    exit_code_file,
    job_name,
    sbatch_command,
    slurm_script,
)

#: A program that records where it ran, its arguments and an environment value.
_PROGRAM = (
    "import json, os, sys; "
    "json.dump({'cwd': os.getcwd(), 'argv': sys.argv[1:], 'env': os.environ.get('MY_VALUE')}, "
    "open('seen.json', 'w')); print('program output')"
)

HOSTILE_NAMES = ["my run", "run_$(touch PWNED)", "run_`touch PWNED`", "ünïcödé 'run\" \\ ;&|"]


def _request(run_dir: Path, setup: Path | None = None, value: str = "a $(b) 'c'") -> JobRequest:
    return JobRequest(
        executable=sys.executable,
        arguments=["-c", _PROGRAM, str(run_dir), "$HOME"],
        directory=run_dir,
        output=run_dir / "batch_job.log",
        name=f"mlip-autopipec-{run_dir.name}",
        environment={"MY_VALUE": value, "OMP_NUM_THREADS": "1"},
        setup_script=setup,
    )


def _run_as_the_node(run_dir: Path, request: JobRequest, job_id: str = "42") -> int:
    """Write the script and run it with bash, as sbatch's node does (SLURM_JOB_ID set)."""
    files = run_dir / "scheduler" / "slurm"
    files.mkdir(parents=True)
    script = files / "job.sh"
    script.write_text(slurm_script(request, files))
    environment = {**os.environ, "SLURM_JOB_ID": job_id}
    # started elsewhere: the script itself goes to the run directory
    return subprocess.run(["bash", str(script)], cwd="/", env=environment, check=False).returncode


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_any_run_directory_reaches_the_program_unchanged_and_runs_nothing(
    tmp_path: Path, name: str
) -> None:
    run_dir = tmp_path / name
    run_dir.mkdir()
    request = _request(run_dir)
    assert _run_as_the_node(run_dir, request) == 0
    seen = json.loads((run_dir / "seen.json").read_text())
    assert seen == {"cwd": str(run_dir), "argv": [str(run_dir), "$HOME"], "env": "a $(b) 'c'"}
    assert "program output" in (run_dir / "batch_job.log").read_text()
    assert exit_code_file(run_dir / "scheduler" / "slurm", "42").read_text().strip() == "0"
    assert not list(tmp_path.rglob("PWNED")) and not Path("/PWNED").exists()


def test_the_programs_exit_code_is_recorded_and_is_the_jobs(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    request = JobRequest(sys.executable, ["-c", "raise SystemExit(3)"], run_dir, run_dir / "out")
    assert _run_as_the_node(run_dir, request, job_id="7") == 3
    assert exit_code_file(run_dir / "scheduler" / "slurm", "7").read_text().strip() == "3"


def test_setup_lines_are_sourced_and_a_failing_setup_stops_the_job(tmp_path: Path) -> None:
    run_dir = tmp_path / "my run"
    run_dir.mkdir()
    setup = run_dir / "job_setup.sh"
    setup.write_text("export MY_VALUE=from_setup\n")
    assert _run_as_the_node(run_dir, _request(run_dir, setup)) == 0
    assert json.loads((run_dir / "seen.json").read_text())["env"] == "from_setup"

    failing = tmp_path / "failing"
    failing.mkdir()
    (failing / "job_setup.sh").write_text("echo loading; false\n")
    assert _run_as_the_node(failing, _request(failing, failing / "job_setup.sh")) == 1
    assert not (failing / "seen.json").exists()
    log = (failing / "batch_job.log").read_text()
    assert "loading" in log and "execution.setup failed with exit code 1" in log


def test_sbatch_gets_every_option_as_one_argument(tmp_path: Path) -> None:
    execution = SlurmExecution(
        time_limit="1-02:03:04", queue="debug", account="proj_1", cpus=4, gpus=1
    )
    run_dir = tmp_path / "run $(id)"
    command = sbatch_command(execution, _request(run_dir), tmp_path / "job.sh")
    assert command[0] == "sbatch" and command[-1] == str(tmp_path / "job.sh")
    assert f"--chdir={run_dir}" in command  # one argument, nothing interpreted
    assert "--job-name=mlip-autopipec-run___id_" in command
    for option in ("--no-requeue", "--partition=debug", "--account=proj_1", "--time=1-02:03:04"):
        assert option in command
    assert "--cpus-per-task=4" in command and "--gpus-per-task=1" in command


def test_a_job_name_keeps_only_plain_characters() -> None:
    assert job_name("mlip-autopipec-run_$(id>PWNED)\n") == "mlip-autopipec-run___id_PWNED__"
    assert job_name("") == "mlip-autopipec"


@pytest.mark.parametrize("field", ["account", "queue"])
@pytest.mark.parametrize("value", ["proj\n#SBATCH --wrap=id", "a b", "x;id", "$(id)", "ü"])
def test_a_queue_or_account_outside_plain_names_is_refused_naming_the_field(
    field: str, value: str
) -> None:
    from mlip_autopipec.config.config_model import parse_trainer_config

    execution = {"type": "slurm", "time_limit": "01:00:00", field: value}
    with pytest.raises(ConfigurationError) as caught:
        parse_trainer_config({"type": "pacemaker", "cutoff": 5.0, "execution": execution})
    [(path, reason)] = caught.value.problems
    assert path == f"trainer.execution.{field}"
    assert "one name of letters" in reason


def test_pbs_refuses_a_path_its_script_cannot_quote(tmp_path: Path) -> None:
    run_dir = tmp_path / "my run"
    with pytest.raises(ConfigurationError, match="psij's pbs job script cannot quote"):
        check_plain("pbs", _request(run_dir, value="1"), tmp_path / "scheduler")
    plain = tmp_path / "run"
    request = JobRequest(sys.executable, ["-m", "x", str(plain)], plain, plain / "out")
    check_plain("pbs", request, plain / "scheduler")  # nothing to quote: accepted
    assert PbsExecution(time_limit="01:00:00").type == "pbs"
