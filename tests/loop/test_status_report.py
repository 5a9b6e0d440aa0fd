"""``loop status`` and the loop report, from the records of a loop run with fake parts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ase import Atoms

from mlip_autopipec.errors import OutputError
from mlip_autopipec.loop import loop_status, run_loop, write_loop_report
from mlip_autopipec.loop.report import REPORT_HTML


@pytest.fixture
def finished_loop(tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]) -> Path:
    fake = fakes(gammas=[30.0, 12.0, 1.0])
    run_loop(loop_config(), start, tmp_path / "loop", parts=fake.parts())
    return tmp_path / "loop"


def test_status_says_why_the_loop_stopped_and_what_each_iteration_did(finished_loop: Path) -> None:
    text = loop_status(finished_loop)
    assert "stopped (converged)" in text
    assert "iteration 0: label: 3/3 labelled, 3 calls" in text
    assert "iteration 1: explore: 8 candidates, max gamma 30.00" in text
    assert "stopped early" in text  # gamma 30 > gamma_upper: MD of generation 0 stopped
    assert "iteration 3: explore: 0 candidates, max gamma 1.00" in text
    assert "oracle calls: 19" in text
    assert "last generation: " + str(finished_loop / "iter_002" / "train" / "run") in text


def test_status_of_an_interrupted_loop_says_how_to_continue(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes(gammas=[30.0])
    fake.interrupt_at = (1, "select")
    with pytest.raises(KeyboardInterrupt):
        run_loop(loop_config(), start, tmp_path / "loop", parts=fake.parts())
    text = loop_status(tmp_path / "loop")
    assert "interrupted" in text and "loop --resume" in text
    assert "iteration 1: explore: 8 candidates" in text and "select:" not in text


def test_status_of_a_directory_without_a_loop(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="not the directory of a loop"):
        loop_status(tmp_path)


def test_report_has_every_plot(finished_loop: Path) -> None:
    path = write_loop_report(finished_loop)
    assert path == finished_loop / "report" / REPORT_HTML
    page = path.read_text()
    for name in ("structures", "gamma", "md_progress", "errors", "wall_time"):
        assert (finished_loop / "report" / f"{name}.png").stat().st_size > 0
        assert f'data-file="{name}.png"' in page
    assert "converged" in page
    train = json.loads((finished_loop / "iter_001" / "train.json").read_text())
    assert train["startup_s"] == 0.25  # the fit's start-up, from its cost record


def test_report_of_a_loop_with_generation_zero_only_notes_missing_plots(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes(gammas=[30.0])
    run_loop(loop_config(max_wall_time=1e-9), start, tmp_path / "loop", parts=fake.parts())
    page = write_loop_report(tmp_path / "loop").read_text()
    assert "not drawn: no step has recorded these numbers yet" in page
    assert not (tmp_path / "loop" / "report" / "gamma.png").exists()


def test_status_of_a_running_loop(finished_loop: Path) -> None:
    from mlip_autopipec.loop.directory import claim_run_directory

    """A loop resumed after its stop (e.g. with a raised cap) runs, whatever loop.json said."""
    with claim_run_directory(finished_loop):  # as a resumed loop holds it
        assert loop_status(finished_loop).startswith(f"loop {finished_loop}: running")
    assert loop_status(finished_loop).startswith(f"loop {finished_loop}: stopped (converged)")
