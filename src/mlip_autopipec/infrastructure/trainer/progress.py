"""Live progress of a pacemaker fit: reads its output lines, shows a progress bar or log lines."""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal, TextIO

Subset = Literal["train", "test"]

#: s between plain progress lines when the output is not a terminal (a log file, CI).
DEFAULT_LOG_INTERVAL_S = 30.0
_BAR_CELLS = 20

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


@dataclass(frozen=True)
class FitProgress:
    """The latest state of a fit: iteration, training loss and RMSEs (meV/atom, meV/Å)."""

    iteration: int | None = None
    loss: float | None = None
    train_energy_rmse_mev_per_atom: float | None = None
    train_force_rmse_mev_per_angstrom: float | None = None
    test_energy_rmse_mev_per_atom: float | None = None
    test_force_rmse_mev_per_angstrom: float | None = None


class ProgressReporter:
    """Shows the progress of a pacemaker fit: a ProgressSink (``progress_sink``), so the
    ``on_line`` callback of ``run_program`` and the display of the training's steps.

    On a terminal: one line with a progress bar, rewritten in place with ``\\r`` whenever the
    progress changes (the elapsed time is not redrawn in between). Elsewhere (a log file, CI):
    plain lines without control characters, at most one every ``interval_s`` seconds, and one
    at the end of the fit. ``clock`` gives seconds (``time.monotonic``);
    ``width`` (characters) overrides the terminal width.
    """

    def __init__(
        self,
        maxiter: int,
        stream: TextIO | None = None,
        *,
        interactive: bool | None = None,
        interval_s: float = DEFAULT_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
    ) -> None:
        if maxiter < 1:
            raise ValueError(f"maxiter must be positive, got {maxiter}")
        if interval_s < 0:
            raise ValueError(f"interval_s must not be negative, got {interval_s}")
        self.maxiter = maxiter
        self.stream: TextIO = sys.stderr if stream is None else stream
        self.interactive = _is_terminal(self.stream) if interactive is None else interactive
        self.interval_s = interval_s
        self._clock = clock
        self._width = width
        self._broken = False  # the stream failed: stay silent
        self._drawn = 0  # characters of the progress bar on screen; 0: none
        self._reset()

    def _reset(self) -> None:
        self._parser = ProgressParser()
        self._progress = FitProgress()
        self._started = self._clock()
        self._rate_from: tuple[float, int] | None = None  # (clock s, iteration)
        self._last_shown: float | None = None
        self._pending = False  # progress not shown yet
        self._final_shown = False  # the final state has been shown (a plain line)
        self._finished = False

    @property
    def progress(self) -> FitProgress:
        """The latest state of the fit."""
        return self._progress

    def __call__(self, line: str) -> None:
        """Takes one output line of the program; shows the progress if it is time to."""
        event = self._parser.feed(line)
        if event is None:
            return
        if event.fit_done:
            self.finish()
        elif self._update(event):
            self._pending = True
            self._final_shown = False
            self._show()

    def _update(self, event: ProgressEvent) -> bool:
        energy = event.energy_rmse_mev_per_atom
        force = event.force_rmse_mev_per_angstrom
        progress = self._progress
        if event.subset == "test":
            if energy is not None and force is not None:
                progress = replace(
                    progress,
                    test_energy_rmse_mev_per_atom=energy,
                    test_force_rmse_mev_per_angstrom=force,
                )
            changed = progress != self._progress
            self._progress = progress
            return changed
        if event.subset != "train":
            return False
        if event.iteration is not None:
            if progress.iteration is not None and event.iteration < progress.iteration:
                self._rate_from = None  # a new fit cycle or ladder step counts from 0 again
            # Iteration 0 is followed by the first test evaluation: the rate is measured from 1.
            if self._rate_from is None and event.iteration >= 1:
                self._rate_from = (self._clock(), event.iteration)
            progress = replace(progress, iteration=event.iteration)
        if event.loss is not None:
            progress = replace(progress, loss=event.loss)
        if energy is not None and force is not None:
            progress = replace(
                progress,
                train_energy_rmse_mev_per_atom=energy,
                train_force_rmse_mev_per_angstrom=force,
            )
        changed = progress != self._progress
        self._progress = progress
        return changed

    def _show(self) -> None:
        now = self._clock()
        if self.interactive:
            self._draw()  # a few changes a second at most: pacemaker's iterations are slower
        elif self._last_shown is None or now - self._last_shown >= self.interval_s:
            self._write_line(self.status())
            self._last_shown = now
            self._pending = False

    def plan_iterations(self, iterations: int) -> None:
        """The number of iterations the fit plans (the 100 % of the bar), once it is sized."""
        self.maxiter = iterations

    def finish(self) -> None:
        """Shows the final progress of the fit (if not shown yet) and ends the progress line."""
        self._finished = True
        if self.interactive:
            if self._pending or self._drawn:
                self._draw()  # the final state, without an estimate of the time remaining
                self._write("\n")
                self._drawn = 0
        elif not self._final_shown and self._progress != FitProgress():
            self._write_line(self.status())
            self._last_shown = self._clock()
            self._final_shown = True
        self._pending = False

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Shows a named step of the training ("fitting", "converting to .yace") as plain lines:
        its start, then its end and how long it took; progress restarts from zero."""
        self.finish()
        name = _printable(name)
        self._write_line(f"{name} ...")
        self._reset()
        started = self._started
        outcome = "interrupted after"
        try:
            yield
            outcome = "done in"
        except Exception:
            outcome = "failed after"
            raise
        finally:
            self.finish()
            self._write_line(f"{name} {outcome} {format_duration(self._clock() - started)}")

    def status(self) -> str:
        """The progress as one line of plain text, e.g. ``iteration 120/300 (40%) loss 1.2e-02 |
        train E 8.9 meV/atom F 38.2 meV/Å | test E 11.6 F 37.7 | elapsed 1m10s, remaining ~1m45s``.
        """
        return " | ".join(part for part in self._status_parts() if part is not None)

    def _status_parts(self) -> tuple[str, str | None, str | None, str]:
        """Iteration and loss, train RMSEs, test RMSEs (None if not known yet), times."""
        progress = self._progress
        now = self._clock()
        if progress.iteration is None:
            head = "waiting for the first iteration"
        else:
            percent = self._percent(progress.iteration)
            head = f"iteration {progress.iteration}/{self.maxiter} ({percent}%)"
        if progress.loss is not None:
            head += f" loss {progress.loss:.1e}"
        train = test = None
        energy, force = (
            progress.train_energy_rmse_mev_per_atom,
            progress.train_force_rmse_mev_per_angstrom,
        )
        if energy is not None and force is not None:
            train = f"train E {energy:.1f} meV/atom F {force:.1f} meV/Å"
        energy, force = (
            progress.test_energy_rmse_mev_per_atom,
            progress.test_force_rmse_mev_per_angstrom,
        )
        if energy is not None and force is not None:
            test = f"test E {energy:.1f} F {force:.1f}"
        timing = f"elapsed {format_duration(now - self._started)}"
        remaining = self._remaining_s(now)
        if remaining is not None:
            timing += f", remaining ~{format_duration(remaining)}"
        return head, train, test, timing

    def _percent(self, iteration: int) -> int:
        return max(0, min(100, 100 * iteration // self.maxiter))

    def _remaining_s(self, now: float) -> float | None:
        """Estimated seconds to maxiter from the mean time per iteration; None if unknown."""
        iteration = self._progress.iteration
        if self._finished or self._rate_from is None or iteration is None:
            return None
        since, first = self._rate_from
        if iteration <= first or now <= since:
            return None
        return max(0, self.maxiter - iteration) * (now - since) / (iteration - first)

    def _draw(self) -> None:
        """Rewrites the progress bar line in place, clipped to the terminal width."""
        iteration = self._progress.iteration
        filled = 0 if iteration is None else _BAR_CELLS * self._percent(iteration) // 100
        bar = "[" + "#" * filled + "-" * (_BAR_CELLS - filled) + "] "
        head, train, test, timing = self._status_parts()
        columns = max(1, self._columns() - 1)  # a full line would wrap on some terminals
        # What does not fit goes: the test RMSEs, the train RMSEs, the bar; the rest is clipped.
        for prefix, parts in (
            (bar, (head, train, test, timing)),
            (bar, (head, train, timing)),
            (bar, (head, timing)),
            ("", (head, timing)),
        ):
            line = prefix + " | ".join(part for part in parts if part is not None)
            if len(line) <= columns:
                break
        line = line[:columns]
        self._write("\r" + line + " " * max(0, self._drawn - len(line)))
        self._drawn = len(line)
        self._last_shown = self._clock()
        self._pending = False

    def _columns(self) -> int:
        if self._width is not None:
            return self._width
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return shutil.get_terminal_size().columns

    def _write_line(self, text: str) -> None:
        if self._drawn:  # never write over the progress bar
            self._write("\n")
            self._drawn = 0
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        if self._broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed stream, broken pipe: progress is not worth a crash
            self._broken = True


def format_duration(seconds: float) -> str:
    """A duration in seconds as 45s, 1m05s or 2h03m."""
    total = round(seconds) if math.isfinite(seconds) and seconds > 0 else 0
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, OSError, ValueError):
        return False


def _printable(text: str) -> str:
    return "".join(char for char in text if char.isprintable())
