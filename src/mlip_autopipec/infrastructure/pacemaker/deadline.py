"""A pacemaker fit callback that ends the fit at a time budget (runs inside pacemaker).

pacemaker imports the callbacks named in ``fit: callbacks`` of input.yaml and calls them after
every iteration of the optimiser. This one reads the deadline (s since the epoch) from the
environment and raises StopIteration, which scipy's optimisers take as a clean stop: pacemaker
then keeps the last iterate, saves it and predicts as after a normal end. It stops one iteration
early when the next iteration, as long as the last one, would end after the deadline.
"""

from __future__ import annotations

import os
import time
from typing import Any

#: Environment variable with the deadline of the optimiser, s since the epoch.
DEADLINE_ENV = "MLIP_AUTOPIPEC_FIT_DEADLINE"
#: What input.yaml names in ``fit: callbacks``.
CALLBACK_NAME = "mlip_autopipec.infrastructure.pacemaker.deadline.stop_at_deadline"
#: The line printed when the fit is stopped; the trainer looks for it in pacemaker's log.
STOP_MARKER = "mlip-autopipec: time budget reached"


class _Clock:
    """When the previous iteration ended (s since the epoch), to predict the next one."""

    previous: float | None = None


def stop_at_deadline(**state: Any) -> None:
    """pacemaker callback (keywords basis_config, current_fit_iteration, ...): StopIteration
    when the next iteration would end after the deadline in ``DEADLINE_ENV``."""
    value = os.environ.get(DEADLINE_ENV)
    if not value:
        return
    now = time.time()
    last_iteration = 0.0 if _Clock.previous is None else now - _Clock.previous
    _Clock.previous = now
    if now + last_iteration >= float(value):
        iteration = state.get("current_fit_iteration")
        print(f"{STOP_MARKER} after iteration {iteration}: stopping the fit", flush=True)
        raise StopIteration
