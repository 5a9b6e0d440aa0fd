"""What pacemaker's log tells about the cost of a fit: iterations done and seconds per iteration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlip_autopipec.infrastructure.trainer.fit_deadline import STOP_MARKER
from mlip_autopipec.infrastructure.trainer.pacemaker_log import ProgressParser

# The timestamp of a logging record: 2026-11-29 07:12:29,810
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})")


@dataclass(frozen=True)
class MeasuredTiming:
    """The iterations of a fit as pacemaker logged them (s of wall time)."""

    iterations: int  # the last iteration number logged
    seconds_per_iteration: float | None  # mean from iteration 1 to the last; None: < 2 logged
    first_iteration_at: datetime | None  # when iteration 1 ended (start-up before it)
    stopped_at_budget: bool


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
    stopped = False
    parser = ProgressParser()
    latest: datetime | None = None  # of the last record with a timestamp; tables have none
    for line in lines[starts[-1] if starts else 0 :]:
        if STOP_MARKER in line:
            stopped = True
            continue
        stamp = _TIMESTAMP.match(line)
        if stamp is not None:
            moment = datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S")
            latest = moment.replace(microsecond=1000 * int(stamp[2]))
        event = parser.feed(line)
        if event is None or event.subset != "train" or event.iteration is None:
            continue
        if event.iteration >= 1 and latest is not None:
            times[event.iteration] = latest
    if not times:
        return MeasuredTiming(0, None, None, stopped)
    first, last = min(times), max(times)
    rate = None
    if last > first:
        rate = (times[last] - times[first]).total_seconds() / (last - first)
    return MeasuredTiming(last, rate, times[first], stopped)
