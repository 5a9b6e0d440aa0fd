"""Reading pacemaker's log: the progress of each output line (on a recorded pacemaker log) and
the timing of a fit.

tests/data/pacemaker_progress.log is a real pacemaker.log (maxiter 300, display_step 10, Cu-Pt),
trimmed: its header, iterations 0-20 and 111-120 with their FIT/TEST tables, iterations 291-300,
the final 'Cycle last iteration' tables and the end of the run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mlip_autopipec.infrastructure.pacemaker.deadline import STOP_MARKER
from mlip_autopipec.infrastructure.pacemaker.log import (
    ProgressEvent,
    ProgressParser,
    parse_line,
    read_fit_timing,
)

from ...conftest import ITERATION_1, PACEMAKER_PROGRESS_LOG

LOG = PACEMAKER_PROGRESS_LOG
RMSE_ROW = (
    "   RMSE:          377.11               174.31               583.68                  567.05"
)


def log_lines() -> list[str]:
    return LOG.read_text(encoding="utf-8").splitlines()


def parsed(lines: list[str]) -> list[ProgressEvent]:
    parser = ProgressParser()
    return [event for line in lines if (event := parser.feed(line)) is not None]


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


# -- timing ---------------------------------------------------------------------------------------

PREFIX = " - pyace.metrics_aggregator - INFO - "
ONE_LINE = (
    "Iteration   #{n}    (3 evals):        Loss: 1.1919e+00 | RMSE Energy(low): 597.61 (509.15) "
    "meV/at | Forces(low): 1023.03 (1016.71) meV/A | Time/eval: 116.20 mcs/at"
)
TABLE = """--------------------------------FIT STATS--------------------------------
Iteration:  #{n}  Loss:    Total:  1.5494e-01 (100%)
                         Energy:  7.8267e-02 ( 51%)
-------------------------------------------------------------------------------------------------
           Energy/at, meV/at   Energy_low/at, meV/at      Force, meV/A        Force_low, meV/A
   RMSE:          334.38                81.61               291.87                  257.36
"""


def _log(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "pacemaker.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_seconds_per_iteration_from_the_timestamps_tables_included(tmp_path: Path) -> None:
    lines = ["=== 2026-11-29T07:00:00 running in /run: pacemaker input.yaml"]
    lines.append(f"2026-11-29 07:00:30,000{PREFIX}" + ONE_LINE.format(n=1))
    lines.append(f"2026-11-29 07:00:30,500{PREFIX}" + ONE_LINE.format(n=2))
    lines.append(f"2026-11-29 07:00:31,000{PREFIX}")  # the record a table follows
    lines += TABLE.format(n=3).splitlines()
    timing = read_fit_timing(_log(tmp_path, lines))
    assert timing.iterations == 3
    assert timing.seconds_per_iteration == pytest.approx(0.5)
    assert timing.first_iteration_at is not None and timing.first_iteration_at.second == 30
    assert not timing.stopped_at_budget


def test_only_the_last_run_counts_and_the_stop_is_seen(tmp_path: Path) -> None:
    lines = ["=== 2026-11-29T06:00:00 running in /run: pacemaker input.yaml"]
    lines += [f"2026-11-29 06:00:{10 + n:02d},000{PREFIX}" + ONE_LINE.format(n=n) for n in (1, 9)]
    lines.append("=== 2026-11-29T07:00:00 running in /run: pacemaker input.yaml")
    lines += [
        f"2026-11-29 07:00:{10 + 2 * n:02d},000{PREFIX}" + ONE_LINE.format(n=n) for n in (1, 2)
    ]
    lines.append(f"{STOP_MARKER} after iteration 1: stopping the fit")
    timing = read_fit_timing(_log(tmp_path, lines))
    assert timing.iterations == 2
    assert timing.seconds_per_iteration == pytest.approx(2.0)
    assert timing.stopped_at_budget


def test_the_evaluation_per_atom_is_pacemakers_median_without_the_initial_state(
    tmp_path: Path,
) -> None:
    lines = ["=== 2026-11-29T07:00:00 running in /run: pacemaker input.yaml"]
    initial = ONE_LINE.replace("Iteration   #{n}    (3 evals)", "Initial state:#0    (1 evals)")
    lines.append(f"2026-11-29 07:00:29,000{PREFIX}" + initial.replace("116.20", "9000.00"))
    for n, micro in ((1, "100.00"), (2, "140.00"), (3, "120.00")):
        line = ONE_LINE.format(n=n).replace("116.20", micro)
        lines.append(f"2026-11-29 07:00:3{n},000{PREFIX}" + line)
    timing = read_fit_timing(_log(tmp_path, lines))
    assert timing.evaluation_s_per_atom == pytest.approx(120e-6)  # µs/atom, tracing left out


def test_a_log_without_iterations_measures_nothing(tmp_path: Path) -> None:
    timing = read_fit_timing(_log(tmp_path, ["=== 2026-11-29T07:00:00 running in /run: x"]))
    assert timing.iterations == 0 and timing.seconds_per_iteration is None
    assert timing.evaluation_s_per_atom is None
