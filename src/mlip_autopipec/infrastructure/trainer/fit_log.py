"""What pacemaker's log tells about the cost of a fit: iterations done and seconds per iteration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlip_autopipec.infrastructure.trainer.fit_deadline import STOP_MARKER
from mlip_autopipec.infrastructure.trainer.progress import ProgressParser

# The timestamp of a logging record: 2026-11-29 07:12:29,810
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})")
# The loss evaluations so far, in an iteration's one-line record: "Iteration   #12  (14 evals)"
_EVALS = re.compile(r"Iteration\s+#(\d+)\s+\((\d+) evals\)")
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
    return MeasuredTiming(last, rate, times[first], stopped, started_at, latest, per_evaluation)
