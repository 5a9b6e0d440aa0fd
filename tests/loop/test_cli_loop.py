"""The ``loop`` command (cli/loop.py) with fake parts: run, resume, status, report, errors.

Here rather than in tests/cli/ because the fakes are fixtures of tests/loop/conftest.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ase.io
import pytest
import yaml
from ase import Atoms

from mlip_autopipec.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, main
from mlip_autopipec.loop import session
from mlip_autopipec.oracle.emt import label_with_emt


@pytest.fixture
def files(tmp_path: Path, start: list[Atoms]) -> dict[str, Path]:
    config = {
        "trainer": {"type": "mock", "cutoff": 5.0},
        "oracle": {"calculator": "ase.calculators.emt.EMT", "workers": 1},
        "explorer": {"temperatures_K": [300, 1200], "steps": 200},
        "loop": {"max_iterations": 2, "initial_structures": {"copies_per_structure": 2}},
    }
    (tmp_path / "loop.yaml").write_text(yaml.safe_dump(config))
    ase.io.write(tmp_path / "start.extxyz", start, format="extxyz")
    return {"config": tmp_path / "loop.yaml", "structures": tmp_path / "start.extxyz"}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, fakes: Any) -> Any:
    """The CLI runs the loop with these fakes (session.LoopParts() makes the real parts)."""
    fake = fakes(gammas=[30.0, 12.0, 1.0])
    monkeypatch.setattr(session, "LoopParts", fake.parts)
    return fake


def _run(files: dict[str, Path], out: Path) -> int:
    config, structures = str(files["config"]), str(files["structures"])
    return main(["loop", "--config", config, "--structures", structures, "--out", str(out)])


def test_loop_runs_to_its_stop_and_says_why(
    tmp_path: Path, files: dict[str, Path], fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(files, tmp_path / "loop") == EXIT_OK
    out = capsys.readouterr().out
    assert "loop stopped (converged)" in out
    assert f"report: {tmp_path / 'loop' / 'report' / 'loop_report.html'}" in out
    assert len(fake.trained) == 3


def test_data_is_read_with_the_fits_neighbour_searches(
    tmp_path: Path, files: dict[str, Path], fake: Any, start: list[Atoms]
) -> None:
    """--data is checked with the neighbour searches at the trainer's cutoff, which generation
    0's fit then reuses (one search per structure, not two)."""
    data = tmp_path / "data.extxyz"
    label_with_emt(start * 2, source="given").write(data)
    args = ["--config", str(files["config"]), "--structures", str(files["structures"])]
    assert main(["loop", *args, "--data", str(data), "--out", str(tmp_path / "loop")]) == EXIT_OK
    table = fake.trained[0]["neighbours"]
    assert table is not None and table.cutoff == 5.0  # the trainer's, in the files fixture
    assert len(table) == 1


def test_loop_status_and_report(
    tmp_path: Path, files: dict[str, Path], fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(files, tmp_path / "loop")
    capsys.readouterr()
    assert main(["loop", "status", str(tmp_path / "loop")]) == EXIT_OK
    assert "stopped (converged)" in capsys.readouterr().out
    assert main(["loop", "report", str(tmp_path / "loop")]) == EXIT_OK
    assert (tmp_path / "loop" / "report" / "loop_report.html").exists()


def test_interrupted_loop_exits_130_and_resumes(
    tmp_path: Path, files: dict[str, Path], fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.interrupt_at = (1, "label")
    assert _run(files, tmp_path / "loop") == EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err
    assert main(["loop", "--resume", str(tmp_path / "loop")]) == EXIT_OK
    assert "loop stopped (converged)" in capsys.readouterr().out
    assert fake.calls[(1, "label")] == 2 and fake.calls[(1, "explore")] == 1


def test_resume_with_a_new_loop_section(
    tmp_path: Path, files: dict[str, Path], fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.gammas = [30.0]
    assert _run(files, tmp_path / "loop") == EXIT_OK
    assert "loop stopped (max_iterations)" in capsys.readouterr().out
    raw = yaml.safe_load(files["config"].read_text())
    raw["loop"]["max_iterations"] = 3
    files["config"].write_text(yaml.safe_dump(raw))
    resume = ["loop", "--resume", str(tmp_path / "loop"), "--config", str(files["config"])]
    assert main(resume) == EXIT_OK
    assert len(fake.trained) == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["loop"], "loop needs --config, --structures, --out"),
        (["loop", "status"], "loop status needs LOOP_DIR"),
        (["loop", "--resume", "X", "--out", "Y"], "--resume continues a loop"),
        (["loop", "elsewhere"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_bad_config_names_the_field(
    tmp_path: Path, files: dict[str, Path], fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = yaml.safe_load(files["config"].read_text())
    raw["loop"]["converged_fraction"] = 2
    raw["explorer"]["gamma_upper"] = 1
    files["config"].write_text(yaml.safe_dump(raw))
    assert _run(files, tmp_path / "loop") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "loop.converged_fraction" in err and "gamma_upper" in err
    assert not (tmp_path / "loop").exists()


def test_status_of_a_directory_without_a_loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["loop", "status", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "not the directory of a loop" in capsys.readouterr().err


def test_structures_that_do_not_exist(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["structures"] = tmp_path / "missing.extxyz"
    assert _run(files, tmp_path / "loop") == EXIT_BAD_INPUT
    assert "--structures" in capsys.readouterr().err
