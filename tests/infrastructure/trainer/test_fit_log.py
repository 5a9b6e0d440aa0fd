"""Iterations and seconds per iteration read from pacemaker's log."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlip_autopipec.infrastructure.trainer.fit_deadline import STOP_MARKER
from mlip_autopipec.infrastructure.trainer.fit_log import read_fit_timing

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


def test_a_log_without_iterations_measures_nothing(tmp_path: Path) -> None:
    timing = read_fit_timing(_log(tmp_path, ["=== 2026-11-29T07:00:00 running in /run: x"]))
    assert timing.iterations == 0 and timing.seconds_per_iteration is None
