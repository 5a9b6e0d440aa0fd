"""Tests of the live progress of a pacemaker fit, on a recorded pacemaker log.

tests/data/pacemaker_progress.log is a real pacemaker.log (maxiter 300, display_step 10, Cu-Pt),
trimmed: its header, iterations 0-20 and 111-120 with their FIT/TEST tables, iterations 291-300,
the final 'Cycle last iteration' tables and the end of the run.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from mlip_autopipec.infrastructure.trainer.progress import (
    FitProgress,
    ProgressEvent,
    ProgressParser,
    ProgressReporter,
    format_duration,
    parse_line,
)
from mlip_autopipec.infrastructure.trainer.runner import run_program

LOG = Path(__file__).resolve().parents[2] / "data" / "pacemaker_progress.log"

ITERATION_1 = (
    "2026-11-29 02:13:05,048 - pyace.metrics_aggregator - INFO - Iteration   #1    (3 evals):"
    "        Loss: 1.1919e+00 | RMSE Energy(low): 597.61 (509.15) meV/at | Forces(low): 1023.03"
    " (1016.71) meV/A | Time/eval: 116.20 mcs/at"
)
RMSE_ROW = (
    "   RMSE:          377.11               174.31               583.68                  567.05"
)


class FakeClock:
    """A clock that moves only when told (s)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def log_lines() -> list[str]:
    return LOG.read_text(encoding="utf-8").splitlines()


def parsed(lines: list[str]) -> list[ProgressEvent]:
    parser = ProgressParser()
    return [event for line in lines if (event := parser.feed(line)) is not None]


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


def test_fixture_is_small() -> None:
    assert LOG.stat().st_size < 40_000


# -- parsing --------------------------------------------------------------------------------------


def test_parse_iteration_line() -> None:
    assert parse_line(ITERATION_1) == ProgressEvent(
        subset="train",
        iteration=1,
        loss=1.1919,
        energy_rmse_mev_per_atom=597.61,
        force_rmse_mev_per_angstrom=1023.03,
    )


def test_parse_iteration_line_of_log_txt_format() -> None:
    """pacemaker's own log.txt writes 'I - ' instead of '- logger - INFO - '."""
    line = ITERATION_1.replace(" - pyace.metrics_aggregator - INFO - ", " I - ")
    event = parse_line(line)
    assert event is not None
    assert (event.subset, event.iteration, event.loss) == ("train", 1, 1.1919)


def test_initial_test_line_is_test() -> None:
    event = parse_line(
        "2026-11-29 02:13:04,691 - pyace.metrics_aggregator - INFO - Initial(TEST):#0    "
        "(1 evals):        Loss: 6.2742e-01 | RMSE Energy(low): 84.55 (84.55) meV/at | "
        "Forces(low): 831.61 (831.61) meV/A | Time/eval:   0.00 mcs/at"
    )
    assert event is not None
    assert (event.subset, event.iteration, event.energy_rmse_mev_per_atom) == ("test", 0, 84.55)
    assert event.force_rmse_mev_per_angstrom == 831.61


def test_parse_table_rows_alone() -> None:
    """Without its header a table row has no subset; the RMSE row gives columns 1 and 3."""
    assert parse_line(RMSE_ROW) == ProgressEvent(
        energy_rmse_mev_per_atom=377.11, force_rmse_mev_per_angstrom=583.68
    )
    header = "-" * 44 + "TEST STATS" + "-" * 44
    assert parse_line(header) == ProgressEvent(subset="test", block="TEST STATS")
    assert parse_line("Iteration:  #10  Loss:    Total:  4.0616e-01 (100%) ") == ProgressEvent(
        iteration=10, loss=0.40616
    )


def test_parser_reads_the_recorded_log() -> None:
    events = parsed(log_lines())
    train = [event for event in events if event.subset == "train"]
    test = [event for event in events if event.subset == "test"]
    iterations = [event.iteration for event in train]
    # iteration 0: a line and the INIT STATS table; every 10th: the FIT STATS table alone; the
    # closing 'Cycle last iteration' table has no iteration
    expected = [0, *range(0, 21), *range(111, 121), *range(291, 301), None]
    assert iterations == expected

    def table(events: list[ProgressEvent], iteration: int) -> ProgressEvent:
        (event,) = [e for e in events if e.iteration == iteration and e.block is not None]
        return event

    # values read off tests/data/pacemaker_progress.log
    fit_10 = table(train, 10)
    assert (fit_10.block, fit_10.loss) == ("FIT STATS", 0.40616)
    assert (fit_10.energy_rmse_mev_per_atom, fit_10.force_rmse_mev_per_angstrom) == (
        377.11,
        583.68,
    )
    test_10 = table(test, 10)
    assert (test_10.block, test_10.loss) == ("TEST STATS", 0.1829)
    assert (test_10.energy_rmse_mev_per_atom, test_10.force_rmse_mev_per_angstrom) == (
        231.11,
        402.09,
    )
    test_20 = table(test, 20)
    assert (test_20.energy_rmse_mev_per_atom, test_20.force_rmse_mev_per_angstrom) == (
        86.30,
        166.24,
    )
    fit_120 = table(train, 120)
    assert (fit_120.loss, fit_120.energy_rmse_mev_per_atom) == (9.4863e-03, 35.13)
    assert fit_120.force_rmse_mev_per_angstrom == 97.87
    iteration_299 = train[iterations.index(299)]
    assert (iteration_299.loss, iteration_299.energy_rmse_mev_per_atom) == (1.3754e-03, 8.76)
    assert iteration_299.force_rmse_mev_per_angstrom == 38.28
    final_train, final_test = train[-1], test[-1]
    assert final_train.block == "Cycle last iteration:"
    assert (final_train.loss, final_train.energy_rmse_mev_per_atom) == (1.3739e-03, 8.92)
    assert final_train.force_rmse_mev_per_angstrom == 38.23
    assert final_test.block == "TEST Cycle last iteration:"
    assert (final_test.energy_rmse_mev_per_atom, final_test.force_rmse_mev_per_angstrom) == (
        11.57,
        37.73,
    )
    assert events[-1].fit_done
    assert sum(event.fit_done for event in events) == 1


@pytest.mark.parametrize(
    "line",
    [
        "",
        " ",
        "\x00\x01\xff\ufffd\x1b[31m garbage \x7f",
        "Traceback (most recent call last):",
        '  File "/venv/lib/python3.11/site-packages/pyace/generalfit.py", line 503, in fit',
        "ValueError: could not convert string to float: 'Loss: 1.2e'",
        "Iteration   #1",
        "Iteration   #1    (3 evals):        Loss: 1.19",
        "Iteration   #" + "9" * 5000 + "    (3 evals):",
        "Iteration:  #",
        "Iteration:  #10  Loss:    Total:  4.06",
        "   RMSE:          377.11               174.31               583.6",
        "   RMSE:          377.11    nan",
        "---------------------------------------------FIT ST",
        "-" * 97,
        "- " * 5000 + "Fitting",
        "fatal: bad revision 'HEAD'",
    ],
)
def test_malformed_lines_give_nothing(line: str) -> None:
    event = parse_line(line)
    assert event is None or (
        event.energy_rmse_mev_per_atom is None and event.force_rmse_mev_per_angstrom is None
    )
    parser = ProgressParser()
    parser.feed("-" * 44 + "FIT STATS" + "-" * 44)
    fed = parser.feed(line)
    assert fed is None or fed.energy_rmse_mev_per_atom is None


def test_line_cut_in_the_middle_of_a_number() -> None:
    event = parse_line(ITERATION_1[: ITERATION_1.index("1.1919e+00") + 4])
    assert event == ProgressEvent(subset="train", iteration=1)  # not loss=1.19
    assert parse_line(ITERATION_1[: ITERATION_1.index("1023.03") + 5]) == ProgressEvent(
        subset="train", iteration=1, loss=1.1919
    )


def test_every_cut_of_every_line_gives_a_true_value_or_none() -> None:
    """A line cut anywhere (a killed program) never yields a number the whole line does not."""
    fields = [field.name for field in dataclasses.fields(ProgressEvent)]
    checked = 0
    for line in log_lines():
        whole = parse_line(line)
        if whole is None:
            continue
        for end in range(len(line)):
            cut = parse_line(line[:end])
            if cut is None:
                continue
            for field in fields:
                value = getattr(cut, field)
                assert value in (None, False) or value == getattr(whole, field), (line[:end], field)
            checked += 1
    assert checked > 100


def test_table_row_outside_a_table_is_ignored() -> None:
    parser = ProgressParser()
    assert parser.feed(RMSE_ROW) is None
    parser.feed("-" * 44 + "FIT STATS" + "-" * 44)
    parser.feed("2026-11-29 02:13:07,282 - pyace.generalfit - INFO - Last relative TRAIN loss")
    assert parser.feed(RMSE_ROW) is None  # a new log record ended the table


# -- reporting ------------------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (44.6, "45s"), (65, "1m05s"), (3600 + 180, "1h03m"), (-3, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_of_nan() -> None:
    assert format_duration(float("nan")) == "0s"
