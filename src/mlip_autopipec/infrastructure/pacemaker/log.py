"""pacemaker's log, read: the progress each output line reports, and the timing of a fit."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

from mlip_autopipec.infrastructure.pacemaker.deadline import STOP_MARKER

Subset = Literal["train", "test"]


# A number as pacemaker prints it: 597.61, 1.1919e+00, nan (a diverging fit), inf.
_NUMBER = r"(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:nan|inf))"


def _pattern(*parts: str) -> re.Pattern[str]:
    return re.compile("".join(parts).replace("NUM", _NUMBER))


# The one-line record of an iteration, after the logging prefix (pyace MetricsAggregator):
#   Iteration   #1    (3 evals):        Loss: 1.1919e+00 | RMSE Energy(low): 597.61 (509.15)
#   meV/at | Forces(low): 1023.03 (1016.71) meV/A | Time/eval: 116.20 mcs/at
# Every number must be followed by its delimiter, so that a line cut in the middle of a number
# yields nothing rather than a wrong value.
_ONE_LINE = _pattern(
    r"(?P<title>Iteration|Initial state:|Initial\(TEST\):)\s*#(?P<iteration>\d+)\s*\(\d+ evals\):",
    r"(?:\s*Loss:\s*(?P<loss>NUM)\s*\|",
    r"(?:\s*RMSE Energy\(low\):\s*(?P<energy>NUM)\s*\(\s*NUM\s*\)\s*meV/at\s*\|",
    r"\s*Forces\(low\):\s*(?P<force>NUM)\s*\(\s*NUM\s*\)\s*meV/A)?)?",
)
# The header of a statistics table: ----FIT STATS----, ----TEST STATS----, ----INIT STATS----,
# ----Cycle last iteration:----, ----TEST LADDER STEP----, ...
_TABLE_HEADER = _pattern(r"^\s*-{3,}(?P<title>[^-]*[A-Za-z][^-]*)-{3,}\s*$")
# Its first row:  Iteration:  #10  Loss:    Total:  4.0616e-01 (100%)
_TABLE_ITERATION = _pattern(
    r"^\s*Iteration:\s*#(?P<iteration>\d+)\s*Loss:\s*Total:\s*(?P<loss>NUM)\s+\("
)
# Its RMSE row, columns Energy/at, Energy_low/at (meV/atom), Force, Force_low (meV/Å). The value
# read from a column is complete when the next column has begun, so a cut line cannot fool it.
_TABLE_RMSE = _pattern(r"^\s*RMSE:\s*(?P<energy>NUM)\s+NUM\s+(?P<force>NUM)\s+NUM\s*$")
# A new log record (which ends any table): it starts with a timestamp.
_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
# pyace's GeneralACEFit.fit logs this once, after all fit cycles and ladder steps.
_FIT_DONE = re.compile(r"(?:^|\s-\s+)Fitting done\s*$")


@dataclass(frozen=True)
class ProgressEvent:
    """What one line of pacemaker's output tells about the fit; None where the line says nothing.

    ``subset`` is None for a row of a statistics table, whose header line tells the subset;
    ``block`` is the title of the table that the line starts (``parse_line``) or completes
    (``ProgressParser``, which joins a table's rows into one event).
    RMSEs are those pacemaker prints: energy per atom (meV/atom) and force per Cartesian
    component (meV/Å).
    """

    subset: Subset | None = None
    iteration: int | None = None
    loss: float | None = None
    energy_rmse_mev_per_atom: float | None = None
    force_rmse_mev_per_angstrom: float | None = None
    block: str | None = None
    fit_done: bool = False


def parse_line(line: str) -> ProgressEvent | None:
    """The progress that one output line of pacemaker reports, or None; never raises.

    A pure function of the line: rows of a statistics table come back with ``subset=None``
    (see ``ProgressParser``). A line cut in the middle of a number gives None for that number.
    """
    try:
        return _parse(line)
    except (ValueError, OverflowError):  # e.g. an integer of more than 4300 digits
        return None


def _parse(line: str) -> ProgressEvent | None:
    match = _ONE_LINE.search(line)
    if match is not None:
        return ProgressEvent(
            subset="test" if "TEST" in match["title"] else "train",
            iteration=int(match["iteration"]),
            loss=_float(match["loss"]),
            energy_rmse_mev_per_atom=_float(match["energy"]),
            force_rmse_mev_per_angstrom=_float(match["force"]),
        )
    match = _TABLE_HEADER.match(line)
    if match is not None:
        title = " ".join(match["title"].split())
        return ProgressEvent(subset=_table_subset(title), block=title)
    match = _TABLE_ITERATION.match(line)
    if match is not None:
        return ProgressEvent(iteration=int(match["iteration"]), loss=float(match["loss"]))
    match = _TABLE_RMSE.match(line)
    if match is not None:
        return ProgressEvent(
            energy_rmse_mev_per_atom=float(match["energy"]),
            force_rmse_mev_per_angstrom=float(match["force"]),
        )
    if _FIT_DONE.search(line):
        return ProgressEvent(fit_done=True)
    return None


def _float(text: str | None) -> float | None:
    return None if text is None else float(text)


def _table_subset(title: str) -> Subset:
    return "test" if "TEST" in title.upper() else "train"


def _is_summary_table(title: str) -> bool:
    """'Cycle last iteration:' and 'LADDER STEP' tables repeat the last state of a fit; their
    iteration counter is one past the last iteration (#301 of maxiter 300)."""
    return "STATS" not in title.upper()


class ProgressParser:
    """Reads pacemaker's output line by line, joining the rows of its statistics tables."""

    def __init__(self) -> None:
        self._table: ProgressEvent | None = None  # the table being read, as read so far

    def feed(self, line: str) -> ProgressEvent | None:
        """The progress this line completes, or None; never raises.

        A one-line record of an iteration gives an event at once, a statistics table one event
        at its RMSE row (with the table's title as ``block`` and the subset its title says), and
        the end of the fit an event with ``fit_done``. Summary tables ('Cycle last iteration:')
        give no iteration, only their loss and RMSEs.
        """
        if _LOG_RECORD.match(line):
            self._table = None
        event = parse_line(line)
        if event is None:
            return None
        if event.subset is not None and event.block is None:  # a one-line record
            return event
        if event.fit_done:
            return event
        if event.block is not None:  # a table header
            self._table = event
            return None
        table = self._table
        if table is None or table.block is None:  # a table row outside a table: not pacemaker's
            return None
        if event.iteration is not None and not _is_summary_table(table.block):
            table = replace(table, iteration=event.iteration)
        if event.loss is not None:
            table = replace(table, loss=event.loss)
        if event.energy_rmse_mev_per_atom is None:
            self._table = table
            return None
        self._table = None  # the RMSE row is the last row read
        return replace(
            table,
            energy_rmse_mev_per_atom=event.energy_rmse_mev_per_atom,
            force_rmse_mev_per_angstrom=event.force_rmse_mev_per_angstrom,
        )


# The timestamp of a logging record: 2026-11-29 07:12:29,810
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})")
# The loss evaluations so far, in an iteration's one-line record: "Iteration   #12  (14 evals)"
_EVALS = re.compile(r"Iteration\s+#(\d+)\s+\((\d+) evals\)")
# pacemaker's own time of the iteration's loss evaluation per atom: "Time/eval:  96.45 mcs/at"
_TIME_PER_EVAL = re.compile(r"Time/eval:\s*([0-9.]+)\s*mcs/at")
# The runner's first line of a run: "=== 2026-11-29T07:00:00 running in /run: ..."
_RUN_START = re.compile(r"^=== (\S+) running in ")


@dataclass(frozen=True)
class MeasuredTiming:
    """The iterations of a fit as pacemaker logged them (s of wall time)."""

    iterations: int  # the last iteration number logged
    seconds_per_iteration: float | None  # mean from iteration 1 to the last; None: < 2 logged
    first_iteration_at: datetime | None  # when iteration 1 ended (start-up before it)
    stopped_at_budget: bool
    started_at: datetime | None = None  # when the runner started pacemaker (its first line)
    last_record_at: datetime | None = None  # the last timestamped line of the run
    #: mean s per loss evaluation over the same iterations (an iteration may take several)
    seconds_per_evaluation: float | None = None
    #: median s of one loss evaluation per training atom, by pacemaker's own timer
    evaluation_s_per_atom: float | None = None


def read_fit_timing(log_path: Path) -> MeasuredTiming:
    """Iteration times from the timestamps of pacemaker's one-line iteration records.

    Only the last pacemaker run of the log counts (the runner appends; each run starts with a
    '=== ... running in' line). Every iteration counts, also those with a test evaluation (every
    display_step, logged as a table under the timestamp of the record before it).
    """
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [
        i for i, line in enumerate(lines) if line.startswith("=== ") and " running in " in line
    ]
    times: dict[int, datetime] = {}
    evaluations: dict[int, int] = {}
    per_atom: list[float] = []
    started_at = None
    stopped = False
    parser = ProgressParser()
    latest: datetime | None = None  # of the last record with a timestamp; tables have none
    for line in lines[starts[-1] if starts else 0 :]:
        run_start = _RUN_START.match(line)
        if run_start is not None:
            try:
                started_at = datetime.fromisoformat(run_start[1])
            except ValueError:
                started_at = None
            continue
        if STOP_MARKER in line:
            stopped = True
            continue
        stamp = _TIMESTAMP.match(line)
        if stamp is not None:
            moment = datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S")
            latest = moment.replace(microsecond=1000 * int(stamp[2]))
        evals = _EVALS.search(line)
        if evals is not None:
            evaluations[int(evals[1])] = int(evals[2])
            timed = _TIME_PER_EVAL.search(line)
            if timed is not None and int(evals[1]) >= 1:
                per_atom.append(float(timed[1]) * 1e-6)
        event = parser.feed(line)
        if event is None or event.subset != "train" or event.iteration is None:
            continue
        if event.iteration >= 1 and latest is not None:
            times[event.iteration] = latest
    if not times:
        return MeasuredTiming(0, None, None, stopped, started_at, latest)
    first, last = min(times), max(times)
    rate = per_evaluation = None
    if last > first:
        rate = (times[last] - times[first]).total_seconds() / (last - first)
    counted = sorted(set(evaluations) & set(times))  # tables (display_step) carry no count
    if len(counted) >= 2 and evaluations[counted[-1]] > evaluations[counted[0]]:
        span = (times[counted[-1]] - times[counted[0]]).total_seconds()
        per_evaluation = span / (evaluations[counted[-1]] - evaluations[counted[0]])
    per_atom_median = float(statistics.median(per_atom)) if per_atom else None
    return MeasuredTiming(
        last, rate, times[first], stopped, started_at, latest, per_evaluation, per_atom_median
    )
