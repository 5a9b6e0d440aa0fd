"""Where a fit's progress goes: the protocol of a progress display, as the trainer uses it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

#: What ``run_program`` takes as ``on_line``: called with each output line of the program.
LineCallback = Callable[[str], None]


@runtime_checkable
class ProgressSink(Protocol):
    """Receives the output of pacemaker's programs and the steps of a training run.

    The runner passes every output line of a program to ``__call__``; the trainer wraps each
    step of a run ("fitting", "converting to .yace") in ``step(name)`` and, once the fit is
    sized, says how many iterations it plans with ``plan_iterations``. Wherever a sink is taken,
    a plain line callback is accepted too: it gets the lines and nothing else.
    The CLI's ``ProgressReporter`` (mlip_autopipec.cli.progress) is the sink of the terminal.
    """

    def __call__(self, line: str) -> None:
        """One output line of the running program (without its newline)."""

    def step(self, name: str) -> AbstractContextManager[None]:
        """A context around one named step of the run."""

    def plan_iterations(self, iterations: int) -> None:
        """The number of iterations the fit plans."""


def reporting_step(
    on_line: LineCallback | None, name: str
) -> contextlib.AbstractContextManager[None]:
    """``on_line.step(name)`` when the callback is a ProgressSink, else a no-op context."""
    if isinstance(on_line, ProgressSink):
        return on_line.step(name)
    return contextlib.nullcontext()


def plan_iterations(on_line: LineCallback | None, iterations: int) -> None:
    """Tell a ProgressSink the planned iterations; a plain line callback is not told."""
    if isinstance(on_line, ProgressSink):
        on_line.plan_iterations(iterations)
