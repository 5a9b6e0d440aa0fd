"""The active-learning loop: explore with the potential, label what it does not know, train the
next generation, until MD at the target conditions no longer extrapolates."""

from __future__ import annotations

from mlip_autopipec.loop.parts import LoopParts
from mlip_autopipec.loop.report import write_loop_report
from mlip_autopipec.loop.session import LoopResult, resume_loop, run_loop
from mlip_autopipec.loop.status import loop_status

__all__ = ["LoopParts", "LoopResult", "loop_status", "resume_loop", "run_loop", "write_loop_report"]
