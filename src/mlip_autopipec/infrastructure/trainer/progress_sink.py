"""What the trainer tells whoever follows a fit: the programs' output lines and its named steps."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Protocol


class ProgressSink(Protocol):
    """Follows a training run (the CLI's progress display is one).

    The runner passes it every output line of a program; the trainer names its steps ("fitting
    (pacemaker)", "converting to .yace") and sets ``maxiter`` to the iterations it planned.
    """

    maxiter: int

    def __call__(self, line: str) -> None:
        """One output line of the running program (without its newline)."""

    def step(self, name: str) -> AbstractContextManager[None]:
        """A context around one named step of the training."""


def step_of(sink: ProgressSink | None, name: str) -> AbstractContextManager[None]:
    """``sink.step(name)``, or nothing to show when no one follows the run."""
    return contextlib.nullcontext() if sink is None else sink.step(name)
