"""The terminal display of a fit's progress: a progress bar on a terminal, else plain lines."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TextIO

from mlip_autopipec.config.durations import format_duration
from mlip_autopipec.errors import SchedulerUnreachableError
from mlip_autopipec.infrastructure.pacemaker.log import ProgressEvent, ProgressParser

#: s between plain progress lines when the output is not a terminal (a log file, CI).
DEFAULT_LOG_INTERVAL_S = 30.0
_BAR_CELLS = 20


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
        except SchedulerUnreachableError:  # the job may still run: not a failure of it
            outcome = "stopped following (the scheduler does not answer) after"
            raise
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


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, OSError, ValueError):
        return False


def _printable(text: str) -> str:
    return "".join(char for char in text if char.isprintable())
