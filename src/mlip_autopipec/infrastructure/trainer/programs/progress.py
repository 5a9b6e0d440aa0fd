"""Where a fit's progress goes: the protocol of a progress display, as the trainer uses it."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class ProgressSink(Protocol):
    """Receives the output of pacemaker's programs and the steps of a training run.

    The runner passes every output line of a program to ``__call__``; the trainer wraps each
    step of a run ("fitting", "converting to .yace") in ``step(name)`` and, once the fit is
    sized, says how many iterations it plans with ``plan_iterations``. The program profile
    (``profile.py``) carries the sink; the CLI's ``ProgressReporter`` (mlip_autopipec.cli.progress)
    is the sink of the terminal.
    """

    def __call__(self, line: str) -> None:
        """One output line of the running program (without its newline)."""

    def step(self, name: str) -> AbstractContextManager[None]:
        """A context around one named step of the run."""

    def plan_iterations(self, iterations: int) -> None:
        """The number of iterations the fit plans."""
