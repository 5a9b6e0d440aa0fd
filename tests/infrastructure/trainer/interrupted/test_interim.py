"""An interrupted run keeps its interim potential; which directories resume and finish take
(a fake pacemaker that saves an interim potential and is then stopped)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlip_autopipec.cli import EXIT_BAD_INPUT, main
from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.config.execution import LocalExecution
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.errors import ConfigurationError, OutputError, TrainerError
from mlip_autopipec.infrastructure.pacemaker.input_yaml import PacemakerInput
from mlip_autopipec.infrastructure.rundir.files import (
    DATA_FILE,
    INPUT_YAML,
    INTERIM_POTENTIAL,
    MANIFEST,
    PACEMAKER_LOG,
    RUN_RECORD,
    TEST_DATA_FILE,
    TRAINING_SET,
)
from mlip_autopipec.infrastructure.trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.interrupted.interim import (
    rebuild_inputs,
    unfinished_run,
    write_resumed_from,
)
from mlip_autopipec.infrastructure.trainer.interrupted.resume import (
    pacemaker_input_from,
    resume_config,
)

from ....conftest import FAKE_PACEMAKER, write_executable

#: Saves an interim potential after "iteration 7", as pacemaker does, and runs on until stopped.
INTERRUPTED_PACEMAKER = """
import os, shutil, sys, time, yaml
config = yaml.safe_load(open(sys.argv[1]))
assert config["potential"]["elements"] == ["Cu", "Pt"], config["potential"]
print(f"fake pacemaker pid {os.getpid()}", flush=True)
for n in range(1, 8):
    print(f"2026-01-01 00:00:0{n},000 - pyace.metrics_aggregator - INFO - Iteration   #{n}"
          "    (1 evals):        Loss: 1.0e+00 | RMSE Energy(low): 1.00 (1.00) meV/at |"
          " Forces(low): 1.00 (1.00) meV/A | Time/eval: 1.00 mcs/at", flush=True)
shutil.copy(os.environ["FAKE_PACEMAKER_DATA"] + "/tiny_CuPt_output_potential.yaml",
            "interim_potential_0.yaml")
print("interim potential saved", flush=True)
time.sleep(120)
"""
CONFIG = {"type": "pacemaker", "cutoff": 4.5, "b_ref": {"type": "zbl"}}
PATIENCE_S = 60.0


@pytest.fixture
def interrupting_pacemaker(fake_pacemaker: Path) -> Path:
    write_executable(fake_pacemaker / "pacemaker", INTERRUPTED_PACEMAKER)
    return fake_pacemaker


def _interrupted_by_time_limit(dataset: Dataset, workdir: Path, **config: object) -> None:
    trainer = PacemakerTrainer(parse_trainer_config({**CONFIG, "time_limit_seconds": 3, **config}))
    with pytest.raises(TrainerError, match="time limit"):
        trainer.train(dataset, workdir)


@pytest.mark.usefixtures("interrupting_pacemaker")
def test_a_time_limit_keeps_the_interim_potential_and_the_run_can_be_finished(
    cu_pt_dataset: Dataset, tmp_path: Path
) -> None:
    workdir = tmp_path / "run"
    _interrupted_by_time_limit(cu_pt_dataset, workdir)

    assert (workdir / INTERIM_POTENTIAL).is_file()
    assert json.loads((workdir / MANIFEST).read_text())["status"] == "failed"
    assert not (workdir / "potential.json").exists() and not (workdir / "potential.yace").exists()
    unfinished = unfinished_run(workdir, "finish")
    assert unfinished.iterations_done == 7 and unfinished.resumed_from == 0
    assert unfinished.config.time_limit_seconds == 3
    assert unfinished.run.elements == ("Cu", "Pt")
    # After a resumed fit was stopped in turn, its iterations count on.
    write_resumed_from(workdir, 40)
    assert unfinished_run(workdir, "resume").iterations_done == 47


@pytest.mark.usefixtures("interrupting_pacemaker")
def test_the_rebuilt_data_files_equal_those_the_fit_read(
    cu_pt_dataset: Dataset, tmp_path: Path
) -> None:
    # A fixed test set: its safe copy rebuilds it too.
    train, test = cu_pt_dataset.subset(range(9)), cu_pt_dataset.subset(range(9, 13))
    workdir = tmp_path / "run"
    trainer = PacemakerTrainer(parse_trainer_config({**CONFIG, "time_limit_seconds": 3}))
    with pytest.raises(TrainerError):
        trainer.train(train, workdir, test_dataset=test)
    # Our own files, just written by the fit: read to compare.
    before = {name: _read(workdir / name) for name in (DATA_FILE, TEST_DATA_FILE)}

    prepared = rebuild_inputs(unfinished_run(workdir, "resume"))

    assert prepared.test_dataset is not None and len(prepared.test_dataset) == len(test)
    for name, frame in before.items():
        after = _read(workdir / name)
        assert list(after["name"]) == list(frame["name"])
        assert np.allclose(after["energy_corrected"], frame["energy_corrected"], atol=1e-9)
        for old, new in zip(frame["forces"], after["forces"], strict=True):
            assert np.allclose(old, new, atol=1e-9)
        for old, new in zip(frame["ase_atoms"], after["ase_atoms"], strict=True):
            assert np.allclose(old.positions, new.positions, atol=1e-8)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_pickle(path, compression="gzip")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
@pytest.mark.usefixtures("interrupting_pacemaker")
def test_kill_9_of_the_cli_keeps_the_interim_potential(
    cu_pt_dataset: Dataset, tmp_path: Path, train_argv: Callable[..., list[str]]
) -> None:
    out = tmp_path / "run"
    cli = subprocess.Popen(
        [sys.executable, "-m", "mlip_autopipec.cli", *train_argv(cu_pt_dataset, CONFIG, out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + PATIENCE_S
    log = out / "pacemaker.log"
    while not (log.exists() and "interim potential saved" in log.read_text()):
        assert cli.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    cli.send_signal(signal.SIGKILL)
    cli.wait()

    assert json.loads((out / MANIFEST).read_text())["status"] == "running"
    assert unfinished_run(out, "resume").iterations_done == 7


def test_bad_directories_are_refused_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["finish", str(foreign)]) == EXIT_BAD_INPUT
    assert "not a run directory of mlip-autopipec" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "absent")]) == EXIT_BAD_INPUT
    assert "is not a directory" in capsys.readouterr().err
    assert main(["train", "--resume", str(foreign), "--data", "x.extxyz"]) == EXIT_BAD_INPUT
    assert "--data cannot be given with it" in capsys.readouterr().err
    assert main(["train", "--config", "c.yaml"]) == EXIT_BAD_INPUT
    assert "train needs --data, --out (or --resume RUN_DIR)" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


@pytest.mark.usefixtures("fake_pacemaker")
def test_finished_runs_and_runs_without_an_interim_potential_are_refused(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished = tmp_path / "finished"
    PacemakerTrainer(parse_trainer_config(CONFIG)).train(cu_pt_dataset, finished)
    with pytest.raises(OutputError, match="holds a finished potential"):
        unfinished_run(finished, "resume")

    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "fail")  # fails before any iteration
    failed = tmp_path / "failed"
    with pytest.raises(TrainerError):
        PacemakerTrainer(parse_trainer_config(CONFIG)).train(cu_pt_dataset, failed)
    assert (failed / RUN_RECORD).is_file()
    assert main(["finish", str(failed)]) == EXIT_BAD_INPUT
    with pytest.raises(OutputError, match="holds no interim potential"):
        unfinished_run(failed, "finish")

    (failed / INTERIM_POTENTIAL).write_text("species: [unclosed")  # killed mid-write
    with pytest.raises(OutputError, match="unreadable"):
        unfinished_run(failed, "finish")

    (failed / RUN_RECORD).unlink()
    with pytest.raises(OutputError, match="no run record"):
        unfinished_run(failed, "finish")


@pytest.mark.usefixtures("interrupting_pacemaker")
def test_a_new_fit_in_an_interrupted_run_says_it_starts_over_and_replaces_the_interim(
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    workdir = tmp_path / "run"
    _interrupted_by_time_limit(cu_pt_dataset, workdir)
    write_executable(fake_pacemaker / "pacemaker", FAKE_PACEMAKER)
    with caplog.at_level(logging.WARNING):
        PacemakerTrainer(parse_trainer_config(CONFIG)).train(cu_pt_dataset, workdir)

    assert "holds the interim potential of an interrupted fit" in caplog.text
    assert not (workdir / INTERIM_POTENTIAL).exists()


def test_a_resume_config_may_change_the_budget_but_not_the_fit() -> None:
    recorded = parse_trainer_config({**CONFIG, "fit": {"maxiter": 100}})
    longer = parse_trainer_config({**CONFIG, "fit": {"maxiter": 900, "early_stop_patience": 3}})
    assert resume_config(recorded, longer).fit.maxiter == 900
    assert resume_config(recorded, None) == recorded

    other = parse_trainer_config({**CONFIG, "cutoff": 5.0, "fit": {"maxiter": 100, "kappa": 0.5}})
    with pytest.raises(ConfigurationError) as caught:
        resume_config(recorded, other)
    message = str(caught.value)
    assert "trainer.cutoff" in message and "5.0" in message and "4.5" in message
    assert "trainer.fit.kappa" in message and "trainer.fit.maxiter" not in message

    batch = parse_trainer_config(
        {**CONFIG, "execution": {"type": "slurm", "time_limit": "1:00:00"}}
    )
    assert isinstance(resume_config(batch, None).execution, LocalExecution)
    with pytest.raises(ConfigurationError, match=r"trainer\.execution"):
        resume_config(recorded, batch)


def test_the_resumed_input_reads_its_potential_from_the_interim_copy(tmp_path: Path) -> None:
    from mlip_autopipec.infrastructure.pacemaker.input_yaml import build_pacemaker_input

    config = parse_trainer_config({**CONFIG, "b_ref": {"type": "none"}})
    built = build_pacemaker_input(
        config,
        baseline=config.b_ref,
        elements=("Cu",),
        min_distances={("Cu", "Cu"): 2.2},
        data_filename=DATA_FILE,
        n_atoms=100,
    )
    built.write(tmp_path / INPUT_YAML)
    recorded = PacemakerInput.model_validate(yaml.safe_load((tmp_path / INPUT_YAML).read_text()))
    stopping = parse_trainer_config(
        {**CONFIG, "fit": {"early_stop_patience": 2, "display_step": 10}}
    )

    data = pacemaker_input_from(recorded, stopping, "resume_start.yaml")

    assert data["potential"] == "resume_start.yaml"
    assert data["data"] == recorded.to_yaml_dict()["data"]
    assert data["fit"]["early_stopping_patience"] == 30
    assert data["fit"]["min_relative_test_loss_per_iter"] == pytest.approx(1e-4)
    assert "early_stopping_patience" not in pacemaker_input_from(recorded, config, "x")["fit"]


def test_the_replacing_warning_is_not_given_for_a_directory_that_is_refused_anyway(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mlip_autopipec.infrastructure.rundir.claim import claim_run_directory, warn_if_resumable

    workdir = tmp_path / "run"
    with claim_run_directory(workdir) as run:
        (run.path / INTERIM_POTENTIAL).write_text("species: []\n")
        with caplog.at_level(logging.WARNING):
            warn_if_resumable(workdir)  # locked by this run: the claim refuses it
        assert "interim potential" not in caplog.text
    with caplog.at_level(logging.WARNING):
        warn_if_resumable(workdir)
    assert "holds the interim potential of an interrupted fit" in caplog.text
    caplog.clear()
    (workdir / "potential.json").write_text("{}")  # finished: refused
    with caplog.at_level(logging.WARNING):
        warn_if_resumable(workdir)
    assert "interim potential" not in caplog.text


#: A planted program: it would leave a marker beside itself, then fail.
PLANTED = """
import pathlib, sys
(pathlib.Path(sys.argv[0]).parent / "PLANTED_RAN").write_text(" ".join(sys.argv))
sys.exit(1)
"""
#: The user's pacemaker on PATH for the second run: it says it ran, then fails at once.
FAILING_PACEMAKER = """
import os
open(os.environ["PATH_PACEMAKER_MARKER"], "w").write("ran")
raise SystemExit(1)
"""


@pytest.mark.parametrize("command", [["finish"], ["train", "--resume"]], ids=["finish", "resume"])
@pytest.mark.usefixtures("interrupting_pacemaker")
def test_a_run_record_never_names_the_programs_that_run(
    command: list[str],
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    workdir = tmp_path / "run"
    _interrupted_by_time_limit(cu_pt_dataset, workdir)
    # Someone plants their script as every program in the run's record.
    planted_dir = tmp_path / "elsewhere"
    planted_dir.mkdir()
    planted = write_executable(planted_dir / "evil", PLANTED)
    record = json.loads((workdir / RUN_RECORD).read_text())
    record["config"]["executables"] = dict.fromkeys(
        ("pacemaker", "pace_yaml2yace", "pace_select", "pace_activeset"), str(planted)
    )
    (workdir / RUN_RECORD).write_text(json.dumps(record))
    write_executable(fake_pacemaker / "pacemaker", FAILING_PACEMAKER)
    marker = tmp_path / "path_pacemaker_ran"
    monkeypatch.setenv("PATH_PACEMAKER_MARKER", str(marker))

    with caplog.at_level(logging.WARNING):
        main([*command, str(workdir)])

    assert not (planted_dir / "PLANTED_RAN").exists()
    assert marker.read_text() == "ran"  # the pacemaker of PATH ran instead
    error = caplog.text
    assert f"{workdir / RUN_RECORD} records trainer.executables" in error
    assert "ignored" in error and str(planted) in error


def test_the_programs_of_a_resumed_run_are_those_of_the_given_config(tmp_path: Path) -> None:
    from mlip_autopipec.infrastructure.rundir.records import config_here

    planted = parse_trainer_config({**CONFIG, "executables": {"pacemaker": "/tmp/evil"}})
    mine = parse_trainer_config({**CONFIG, "executables": {"pacemaker": "/opt/pace/pacemaker"}})
    assert config_here(planted, tmp_path / RUN_RECORD).executables.pacemaker == "pacemaker"
    assert (
        config_here(planted, tmp_path / RUN_RECORD, mine.executables).executables.pacemaker
        == "/opt/pace/pacemaker"
    )
    assert config_here(mine, tmp_path, mine.executables) == mine


@pytest.mark.parametrize("name", [TRAINING_SET, INPUT_YAML, PACEMAKER_LOG])
@pytest.mark.usefixtures("interrupting_pacemaker")
def test_a_link_in_an_interrupted_run_is_refused_and_nothing_outside_is_written(
    name: str,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    train_argv: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    workdir = tmp_path / "run"
    _interrupted_by_time_limit(cu_pt_dataset, workdir)
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours\n")
    (workdir / name).unlink()
    (workdir / name).symlink_to(outside)
    write_executable(fake_pacemaker / "pacemaker", FAKE_PACEMAKER)
    capsys.readouterr()

    assert main(train_argv(cu_pt_dataset, CONFIG, workdir)) == EXIT_BAD_INPUT

    error = capsys.readouterr().err
    assert f"{name} -> {outside}" in error and "symbolic link" in error
    assert outside.read_text() == "not yours\n"
    assert (workdir / name).is_symlink()  # left for the user to look at
    # finish and resume refuse it too.
    assert main(["finish", str(workdir)]) == EXIT_BAD_INPUT
    assert main(["train", "--resume", str(workdir)]) == EXIT_BAD_INPUT
    assert outside.read_text() == "not yours\n"


@pytest.mark.parametrize("command", [["finish"], ["train", "--resume"]], ids=["finish", "resume"])
@pytest.mark.usefixtures("interrupting_pacemaker")
def test_an_interrupted_run_with_altered_data_is_not_continued(
    command: list[str],
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workdir = tmp_path / "run"
    _interrupted_by_time_limit(cu_pt_dataset, workdir)
    Dataset.read(workdir / TRAINING_SET).subset(range(3, 13)).write(workdir / TRAINING_SET)
    capsys.readouterr()

    assert main([*command, str(workdir)]) == EXIT_BAD_INPUT

    error = capsys.readouterr().err
    assert f"{workdir / TRAINING_SET} is not the data its run recorded in {RUN_RECORD}" in error
    assert "holds 10 structures where the run fitted 13 (3 dropped)" in error
    assert not (workdir / "potential.json").exists()
