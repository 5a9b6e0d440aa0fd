"""The terminal display of a fit's progress, fed with a recorded pacemaker log."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mlip_autopipec.cli.progress import FitProgress, ProgressReporter
from mlip_autopipec.infrastructure.trainer.programs.runner import run_program

from ..conftest import ITERATION_1, PACEMAKER_PROGRESS_LOG

LOG = PACEMAKER_PROGRESS_LOG


class FakeClock:
    """A clock that moves only when told (s)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def log_lines() -> list[str]:
    return LOG.read_text(encoding="utf-8").splitlines()


def reporter(
    clock: FakeClock, *, interactive: bool, interval_s: float = 30.0
) -> tuple[ProgressReporter, io.StringIO]:
    stream = io.StringIO()
    return (
        ProgressReporter(
            300, stream, interactive=interactive, interval_s=interval_s, clock=clock, width=200
        ),
        stream,
    )


def test_planned_iterations_are_the_whole_bar() -> None:
    progress, _ = reporter(FakeClock(), interactive=False)
    progress.plan_iterations(120)
    assert progress.maxiter == 120
    progress(ITERATION_1)
    assert progress.status().startswith("iteration 1/120 (0%)")


def test_plain_output_reads_the_log_without_control_characters() -> None:
    clock = FakeClock()
    progress, stream = reporter(clock, interactive=False, interval_s=5.0)
    with progress.step("fitting"):
        for line in log_lines():
            clock.now += 0.25
            progress(line)
    output = stream.getvalue()
    assert "\r" not in output
    assert "\x1b" not in output
    lines = output.splitlines()
    assert lines[0] == "fitting ..."
    assert lines[-1] == "fitting done in 1m18s"
    final = lines[-2]
    assert final.startswith("iteration 300/300 (100%) loss 1.4e-03 | ")
    assert "train E 8.9 meV/atom F 38.2 meV/Å | test E 11.6 F 37.7 | elapsed 1m15s" in final
    assert "remaining" not in final  # the fit was done
    assert any("remaining ~" in line for line in lines[1:-2])
    assert progress.progress == FitProgress(
        iteration=300,
        loss=1.3739e-03,
        train_energy_rmse_mev_per_atom=8.92,
        train_force_rmse_mev_per_angstrom=38.23,
        test_energy_rmse_mev_per_atom=11.57,
        test_force_rmse_mev_per_angstrom=37.73,
    )


def test_reporter_as_the_callback_of_run_program(tmp_path: Path) -> None:
    """The recorded output, printed by a real program (cat), reaches the reporter line by line."""
    clock = FakeClock()
    progress, stream = reporter(clock, interactive=False)
    log_path = tmp_path / "cat.log"
    run_program(["cat", str(LOG)], workdir=tmp_path, log_path=log_path, on_line=progress)
    assert progress.progress.iteration == 300
    assert progress.progress.test_energy_rmse_mev_per_atom == 11.57
    assert stream.getvalue().splitlines()[-1].startswith("iteration 300/300 (100%)")


def test_plain_output_is_throttled() -> None:
    clock = FakeClock()
    progress, stream = reporter(clock, interactive=False, interval_s=30.0)
    lines = [line for line in log_lines() if "Iteration   #" in line]
    progress(lines[0])  # the first progress shows at once
    assert stream.getvalue().count("\n") == 1
    clock.now = 29.0
    for line in lines[1:5]:
        progress(line)
    assert stream.getvalue().count("\n") == 1
    clock.now = 30.0
    progress(lines[5])
    assert stream.getvalue().count("\n") == 2
    assert stream.getvalue().splitlines()[-1].startswith("iteration 6/300 (2%) loss 6.4e-01")
    progress(lines[6])
    assert stream.getvalue().count("\n") == 2
    progress.finish()  # ... and the last state at the end, once
    progress.finish()
    assert stream.getvalue().count("\n") == 3
    assert stream.getvalue().splitlines()[-1].startswith("iteration 7/300 (2%)")


def test_elapsed_and_remaining_time() -> None:
    clock = FakeClock()
    progress, _ = reporter(clock, interactive=False)
    clock.now = 10.0
    progress(ITERATION_1)  # the rate is measured from here: 2 s per iteration below
    clock.now = 30.0
    progress(ITERATION_1.replace("#1 ", "#11").replace("1.1919e+00", "9.8765e-02"))
    assert progress.status() == (
        "iteration 11/300 (3%) loss 9.9e-02 | train E 597.6 meV/atom F 1023.0 meV/Å | "
        "elapsed 30s, remaining ~9m38s"
    )


def test_interactive_output_rewrites_one_line() -> None:
    clock = FakeClock()
    progress, stream = reporter(clock, interactive=True)
    for line in log_lines():
        clock.now += 0.25
        progress(line)
    output = stream.getvalue()
    assert output.count("\r") > 10
    assert output.endswith("\n")  # 'Fitting done' ends the progress line
    assert output.count("\n") == 1
    last = output.rstrip("\n").rsplit("\r", 1)[-1].rstrip()
    assert last.startswith("[####################] iteration 300/300 (100%)")
    assert all(len(drawn) < 200 for drawn in output.split("\r"))


def test_interactive_output_fits_a_narrow_terminal() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    progress = ProgressReporter(300, stream, interactive=True, clock=clock, width=80)
    for line in log_lines()[:120]:
        clock.now += 1.0
        progress(line)
    drawn = stream.getvalue().split("\r")[-1]
    assert len(drawn) <= 79
    assert "remaining ~" in drawn  # the RMSEs make room for the time left


def test_terminal_detection() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert ProgressReporter(10, Terminal()).interactive
    assert not ProgressReporter(10, io.StringIO()).interactive


def test_steps_are_plain_lines_and_failures_propagate() -> None:
    clock = FakeClock()
    progress, stream = reporter(clock, interactive=True)
    with progress.step("writing data"):
        clock.now += 2.0
    with pytest.raises(RuntimeError), progress.step("fitting"):
        progress(ITERATION_1)
        clock.now += 65.0
        raise RuntimeError("pacemaker failed")
    lines = stream.getvalue().split("\n")
    assert lines[:3] == ["writing data ...", "writing data done in 2s", "fitting ..."]
    assert lines[3].startswith("\r[")  # the progress line, ended before the next step line
    assert lines[4:] == ["fitting failed after 1m05s", ""]


def test_a_broken_stream_does_not_stop_the_fit() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("gone")

    progress = ProgressReporter(300, Broken(), interactive=False)
    for line in log_lines():
        progress(line)
    progress.finish()


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="maxiter"):
        ProgressReporter(0, io.StringIO())
    with pytest.raises(ValueError, match="interval_s"):
        ProgressReporter(10, io.StringIO(), interval_s=-1)
