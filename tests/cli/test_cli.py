"""The mlip-autopipec command: exit codes, messages and what it writes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.io import write

from mlip_autopipec.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_CHECKS,
    EXIT_OK,
    EXIT_TRAINING_FAILED,
    main,
)
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.oracle.emt import label_with_emt

from ..conftest import TrainCli, cu_pt_structures, expect_pacemaker_input

PACEMAKER_CONFIG = "trainer:\n  type: pacemaker\n  cutoff: 5\n"


def _write_data(dataset: Dataset, path: Path) -> Path:
    write(path, dataset.to_atoms(), format="extxyz")
    return path


def test_mock_training_writes_the_run_directory_and_prints_where(cli: TrainCli) -> None:
    out = cli.out

    assert cli.train("trainer:\n  type: mock\n  cutoff: 5.0\n") == 0

    printed = cli.printed()
    assert str(out / "mock_potential.yace") in printed
    assert "nothing was fitted" in printed
    for name in ("training_data.pckl.gzip", "input.yaml", "potential.json"):
        assert (out / name).exists(), name


def test_bad_config_exits_2_and_names_the_field(cli: TrainCli, tmp_path: Path) -> None:
    config = (
        "trainer:\n  type: pacemaker\n  cutoff: 5.0\n  b_ref: {type: zbl, inner_cutoff: -1.0}\n"
    )
    code = cli.train(config, out=tmp_path)
    assert code == EXIT_BAD_INPUT
    error = cli.error()
    assert "trainer.b_ref.inner_cutoff" in error
    assert "config.yaml" in error


def test_bad_data_exits_2_and_names_the_structure(cli: TrainCli, tmp_path: Path) -> None:
    images = cli.dataset.to_atoms()
    images[3].calc.results["forces"][1, 2] = np.nan
    code = cli.train("trainer:\n  type: mock\n  cutoff: 5.0\n", out=tmp_path, data=images)
    assert code == EXIT_BAD_INPUT
    error = cli.error()
    assert "structure 3" in error and "alloy_3" in error and "data.extxyz" in error
    assert "NaN" in error


def test_failed_fit_exits_1_with_the_log(
    cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "fail")
    out = cli.out
    code = cli.train(PACEMAKER_CONFIG)
    assert code == EXIT_TRAINING_FAILED
    error = cli.error()
    assert "exit code 3" in error
    assert str(out / "pacemaker.log") in error
    assert not (out / "potential.json").exists()


def test_fake_pacemaker_training_prints_metrics(
    cli: TrainCli, tmp_path: Path, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expect_pacemaker_input(monkeypatch, "cli_cutoff_5")
    code = cli.train(PACEMAKER_CONFIG, out=tmp_path / "r")
    assert code == EXIT_OK
    printed = cli.printed()
    assert "energy RMSE     2.00 meV/atom" in printed
    assert "force RMSE    30.00 meV/Å" in printed


@pytest.mark.requires_pacemaker
def test_a_potential_failing_the_safety_gate_exits_3_naming_pair_and_distance(
    cli: TrainCli, tmp_path: Path, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "no_core")  # no repulsion below the data
    arguments = cli.arguments(PACEMAKER_CONFIG)

    assert main([*arguments, "--out", str(tmp_path / "r1")]) == EXIT_FAILED_CHECKS == 3
    error = cli.error()
    assert "FAILED its safety checks" in error
    assert "compression of structure 0 'alloy_0': the energy falls as it is compressed" in error
    assert "shortest interatomic distance 2.0" in error
    assert "--accept-failed-checks" in error
    assert json.loads((tmp_path / "r1" / "potential.json").read_text())["checks_passed"] is False

    with pytest.warns(UserWarning, match="FAILED its safety checks"):
        code = main([*arguments, "--out", str(tmp_path / "r2"), "--accept-failed-checks"])
    assert code == EXIT_OK
    assert "FAILED CHECK: compression of structure 0 'alloy_0'" in cli.printed()


@pytest.mark.requires_pacemaker
def test_the_failed_checks_warning_is_one_line_without_source(
    cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "no_core")
    command = [sys.executable, "-m", "mlip_autopipec.cli"]
    command += [*cli.arguments(PACEMAKER_CONFIG, cli.out), "--accept-failed-checks"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == EXIT_OK, result.stderr
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any("FAILED its safety checks" in line for line in warned), result.stderr
    assert "UserWarning" not in result.stderr and "warnings.warn(" not in result.stderr


def test_installed_entry_point_has_useful_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlip_autopipec.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for option in ("--config", "--data", "--out"):
        assert option in result.stdout


def test_python_dash_m_runs_the_cli_and_reports_the_installed_version() -> None:
    from importlib import metadata

    result = subprocess.run(
        [sys.executable, "-m", "mlip_autopipec", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"mlip-autopipec {metadata.version('mlip-autopipec')}"


def _fake_run(cli: TrainCli) -> Path:
    """A run of the fake pacemaker trained in ``cli.out``, its output read."""
    assert cli.train(PACEMAKER_CONFIG) == 0
    cli.capsys.readouterr()
    return cli.out


@pytest.mark.requires_pacemaker
@pytest.mark.usefixtures("fake_pacemaker")
def test_dimers_and_report_commands_on_a_finished_run(cli: TrainCli) -> None:
    run = _fake_run(cli)
    (run / "dimers.png").unlink()

    assert main(["dimers", str(run)]) == EXIT_OK
    printed = cli.printed()
    for pair in ("Cu-Cu", "Cu-Pt", "Pt-Pt"):
        assert pair in printed
    assert (run / "dimers.png").exists()

    assert main(["report", str(run)]) == EXIT_OK
    report = Path(cli.printed().split("report: ")[1].strip())
    assert report.name == "report.html" and report.exists()


def test_commands_on_a_directory_without_a_run_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dimers", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "holds no potential.json" in capsys.readouterr().err


@pytest.mark.requires_pacemaker
@pytest.mark.usefixtures("fake_pacemaker")
def test_gamma_grades_every_structure(cli: TrainCli, tmp_path: Path) -> None:
    run = _fake_run(cli)
    data = _write_data(cli.dataset, tmp_path / "new.extxyz")
    assert main(["gamma", str(run), str(data)]) == EXIT_OK
    printed = cli.printed()
    assert "alloy_0" in printed and "dimer" in printed
    assert f"of {len(cli.dataset)} structures have gamma > 1" in printed


@pytest.mark.requires_pacemaker
@pytest.mark.parametrize("suffix", [".extxyz", ".pckl.gzip"])
def test_select_writes_the_selected_structures(cli: TrainCli, tmp_path: Path, suffix: str) -> None:
    from mlip_autopipec.infrastructure.pacemaker.data_file import (
        dataframe_to_dataset,
        read_data_file,
    )

    config = (
        "trainer:\n  type: pacemaker\n  cutoff: 4.5\n"
        "  ace_params: {number_of_functions_per_element: 6}\n"
    )
    out = tmp_path / f"selected{suffix}"
    argv = ["select", *cli.config_and_data(config), "--out", str(out)]
    assert main([*argv, "--max-structures", "4"]) == EXIT_OK
    assert "selected 4 of 13 structures" in cli.printed()
    if suffix == ".extxyz":
        selected = Dataset.read(out)
    else:
        selected = dataframe_to_dataset(read_data_file(out))
    assert len(selected) == 4
    original = {s.name: s for s in cli.dataset}
    for structure in selected:
        assert structure.energy == pytest.approx(original[structure.name].energy)


@pytest.mark.requires_pacemaker
@pytest.mark.usefixtures("fake_pacemaker")
def test_evaluate_scores_data_writes_a_report_and_warns_about_training_structures(
    cli: TrainCli, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cu_pt_dataset = cli.dataset
    run = _fake_run(cli)
    unseen = label_with_emt(cu_pt_structures(count=6, seed=9)[:-1])  # without the dimer
    data = _write_data(unseen, tmp_path / "unseen.extxyz")

    assert main(["evaluate", str(run), str(data), "--worst", "3"]) == EXIT_OK
    printed = cli.printed()
    assert "6 structures" in printed and "forces by element: Cu RMSE" in printed
    assert "worst 3 structures (by force RMSE)" in printed
    assert "max gamma" in printed
    assert "extrapolate (gamma > 1.01)" in printed  # the active set's tolerance, not 1
    report = run / "evaluation_unseen"
    record = json.loads((report / "evaluation.json").read_text())
    assert len(record["structures"]) == 6
    assert set(record["force_by_element_mev_per_angstrom"]) == {"Cu", "Pt"}
    for name in ("evaluation.txt", "energy_parity.png", "force_parity.png"):
        assert (report / name).exists(), name
    assert "also in the training data" not in caplog.text

    training = _write_data(cu_pt_dataset, tmp_path / "same.extxyz")
    out = tmp_path / "scores"
    assert main(["evaluate", str(run), str(training), "--out", str(out)]) == EXIT_OK
    assert f"{len(cu_pt_dataset)} of {len(cu_pt_dataset)} structures" in caplog.text
    assert "also in the training data" in caplog.text
    assert (out / "evaluation.json").exists()

    # An earlier evaluation's files are replaced only when asked.
    before = (out / "evaluation.txt").read_bytes()
    assert main(["evaluate", str(run), str(data), "--out", str(out)]) == EXIT_BAD_INPUT
    assert "--overwrite" in cli.error()
    assert (out / "evaluation.txt").read_bytes() == before
    assert main(["evaluate", str(run), str(data), "--out", str(out), "--overwrite"]) == EXIT_OK
    assert (out / "evaluation.txt").read_bytes() != before


@pytest.mark.usefixtures("fake_pacemaker")
def test_evaluate_refuses_elements_the_potential_does_not_know(
    cli: TrainCli, tmp_path: Path
) -> None:
    run = _fake_run(cli)
    gold = label_with_emt([bulk("Au", "fcc", a=4.1, cubic=True)])
    data = _write_data(gold, tmp_path / "gold.extxyz")
    assert main(["evaluate", str(run), str(data)]) == EXIT_BAD_INPUT
    assert "['Au']" in cli.error()


@pytest.mark.usefixtures("fake_pacemaker")
def test_train_with_a_fixed_test_file(
    cli: TrainCli,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expect_pacemaker_input(monkeypatch, "fixed_test_set")
    new = cu_pt_structures(count=4, seed=5)[:-1]  # not the dimer, which is in the data
    test = label_with_emt([*new, cli.dataset.to_atoms()[2]])
    test_file = _write_data(test, tmp_path / "test.extxyz")
    out = cli.out
    assert cli.train(PACEMAKER_CONFIG, "--test-data", str(test_file)) == EXIT_OK

    data_section = yaml.safe_load((out / "input.yaml").read_text())["data"]
    assert data_section == {
        "filename": "training_data.pckl.gzip",
        "test_filename": "test_data.pckl.gzip",
    }
    potential = Potential.load(out)
    assert potential.test_metrics is not None and potential.test_metrics.n_structures == 5
    assert potential.train_metrics is not None
    assert potential.train_metrics.n_structures == len(cli.dataset)
    # The fake predicts the fixed test set 4 meV/atom and 50 meV/Å off.
    assert potential.test_metrics.force_rmse_mev_per_angstrom == pytest.approx(50.0)
    assert "1 of 5 structures of the test data are also in the training data" in caplog.text
    assert "test data 4 'alloy_2' = training 2 'alloy_2'" in caplog.text


@pytest.mark.requires_pacemaker
def test_a_budgeted_fit_prints_its_estimate_first_and_its_cost_last(
    cli: TrainCli, tmp_path: Path, fake_pacemaker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = PACEMAKER_CONFIG + "  fit: {time_budget: 30min}\n"
    code = cli.train(config, out=tmp_path / "r")
    assert code == EXIT_OK
    printed = cli.printed()
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("cost estimate: about") for message in messages)
    assert "the time budget ended the fit after 2 iterations" in caplog.text
    assert "cost: 2 iterations, 0.5 s measured per iteration (estimated" in printed
    assert "time budget: 1800 s, the fit ended by the budget" in printed
