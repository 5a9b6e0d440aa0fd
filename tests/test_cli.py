"""The mlip-autopipec command: exit codes, messages and what it writes."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import write

from mlip_autopipec.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_TRAINING_FAILED, main
from mlip_autopipec.domain_models.dataset import Dataset


def _write_data(dataset: Dataset, path: Path) -> Path:
    write(path, dataset.to_atoms(), format="extxyz")
    return path


def _write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_mock_training_writes_the_run_directory_and_prints_where(
    cu_pt_dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_data(cu_pt_dataset, tmp_path / "data.extxyz")
    config = _write_config(tmp_path / "config.yaml", "trainer:\n  type: mock\n  cutoff: 5.0\n")
    out = tmp_path / "run"

    assert main(["train", "--config", str(config), "--data", str(data), "--out", str(out)]) == 0

    printed = capsys.readouterr().out
    assert str(out / "mock_potential.yace") in printed
    assert "nothing was fitted" in printed
    for name in ("training_data.pckl.gzip", "input.yaml", "potential.json"):
        assert (out / name).exists(), name


def test_bad_config_exits_2_and_names_the_field(
    cu_pt_dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_data(cu_pt_dataset, tmp_path / "data.extxyz")
    config = _write_config(
        tmp_path / "config.yaml",
        "trainer:\n  type: pacemaker\n  cutoff: 5.0\n  b_ref: {type: zbl, inner_cutoff: -1.0}\n",
    )
    code = main(["train", "--config", str(config), "--data", str(data), "--out", str(tmp_path)])
    assert code == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert "trainer.b_ref.inner_cutoff" in error
    assert "config.yaml" in error


def test_bad_data_exits_2_and_names_the_structure(
    cu_pt_dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = cu_pt_dataset.to_atoms()
    images[3].calc.results["forces"][1, 2] = np.nan
    data = tmp_path / "data.extxyz"
    write(data, images, format="extxyz")
    config = _write_config(tmp_path / "config.yaml", "trainer:\n  type: mock\n  cutoff: 5.0\n")
    code = main(["train", "--config", str(config), "--data", str(data), "--out", str(tmp_path)])
    assert code == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert "structure 3" in error and "alloy_3" in error and "data.extxyz" in error
    assert "NaN" in error


def test_failed_fit_exits_1_with_the_log(
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "fail")
    data = _write_data(cu_pt_dataset, tmp_path / "data.extxyz")
    config = _write_config(tmp_path / "config.yaml", "trainer:\n  type: pacemaker\n  cutoff: 5\n")
    out = tmp_path / "run"
    code = main(["train", "--config", str(config), "--data", str(data), "--out", str(out)])
    assert code == EXIT_TRAINING_FAILED
    error = capsys.readouterr().err
    assert "exit code 3" in error
    assert str(out / "pacemaker.log") in error
    assert not (out / "potential.json").exists()


def test_fake_pacemaker_training_prints_metrics(
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = _write_data(cu_pt_dataset, tmp_path / "data.extxyz")
    config = _write_config(tmp_path / "config.yaml", "trainer:\n  type: pacemaker\n  cutoff: 5\n")
    code = main(
        ["train", "--config", str(config), "--data", str(data), "--out", str(tmp_path / "r")]
    )
    assert code == EXIT_OK
    printed = capsys.readouterr().out
    assert "energy RMSE     2.00 meV/atom" in printed
    assert "force RMSE    30.00 meV/Å" in printed


def test_installed_entry_point_has_useful_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlip_autopipec.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for option in ("--config", "--data", "--out"):
        assert option in result.stdout


def _fake_run(dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    data = _write_data(dataset, tmp_path / "data.extxyz")
    config = _write_config(tmp_path / "config.yaml", "trainer:\n  type: pacemaker\n  cutoff: 5\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--data", str(data), "--out", str(out)]) == 0
    capsys.readouterr()
    return out


@pytest.mark.usefixtures("fake_pacemaker")
def test_dimers_and_report_commands_on_a_finished_run(
    cu_pt_dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _fake_run(cu_pt_dataset, tmp_path, capsys)
    (run / "dimers.png").unlink()

    assert main(["dimers", str(run)]) == EXIT_OK
    printed = capsys.readouterr().out
    for pair in ("Cu-Cu", "Cu-Pt", "Pt-Pt"):
        assert pair in printed
    assert (run / "dimers.png").exists()

    assert main(["report", str(run)]) == EXIT_OK
    report = Path(capsys.readouterr().out.split("report: ")[1].strip())
    assert report.name == "report.html" and report.exists()


def test_commands_on_a_directory_without_a_run_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dimers", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "holds no potential.json" in capsys.readouterr().err


@pytest.mark.usefixtures("fake_pacemaker")
def test_gamma_grades_every_structure(
    cu_pt_dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _fake_run(cu_pt_dataset, tmp_path, capsys)
    data = _write_data(cu_pt_dataset, tmp_path / "new.extxyz")
    assert main(["gamma", str(run), str(data)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "alloy_0" in printed and "dimer" in printed
    assert f"of {len(cu_pt_dataset)} structures have gamma > 1" in printed


@pytest.mark.requires_pacemaker
@pytest.mark.parametrize("suffix", [".extxyz", ".pckl.gzip"])
def test_select_writes_the_selected_structures(
    cu_pt_dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    from mlip_autopipec.infrastructure.trainer.data_file import (
        dataframe_to_dataset,
        read_data_file,
    )

    data = _write_data(cu_pt_dataset, tmp_path / "data.extxyz")
    config = _write_config(
        tmp_path / "config.yaml",
        "trainer:\n  type: pacemaker\n  cutoff: 4.5\n"
        "  ace_params: {number_of_functions_per_element: 6}\n",
    )
    out = tmp_path / f"selected{suffix}"
    argv = ["select", "--config", str(config), "--data", str(data), "--out", str(out)]
    assert main([*argv, "--max-structures", "4"]) == EXIT_OK
    assert "selected 4 of 13 structures" in capsys.readouterr().out
    if suffix == ".extxyz":
        selected = Dataset.read(out)
    else:
        selected = dataframe_to_dataset(read_data_file(out))
    assert len(selected) == 4
    original = {s.name: s for s in cu_pt_dataset}
    for structure in selected:
        assert structure.energy == pytest.approx(original[structure.name].energy)


def test_a_budgeted_fit_prints_its_estimate_first_and_its_cost_last(
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    data = _write_data(cu_pt_dataset, tmp_path / "data.extxyz")
    config = _write_config(
        tmp_path / "config.yaml",
        "trainer:\n  type: pacemaker\n  cutoff: 5\n  fit: {time_budget: 30min}\n",
    )
    code = main(
        ["train", "--config", str(config), "--data", str(data), "--out", str(tmp_path / "r")]
    )
    assert code == EXIT_OK
    captured = capsys.readouterr()
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("cost estimate: about") for message in messages)
    assert "the time budget ended the fit after 2 iterations" in caplog.text
    assert "cost: 2 iterations, 0.5 s measured per iteration (estimated" in captured.out
    assert "time budget: 1800 s, the fit ended by the budget" in captured.out
