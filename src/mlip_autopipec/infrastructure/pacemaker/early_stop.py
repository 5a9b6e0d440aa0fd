"""Early stopping: pacemaker's own rule, set from ``fit.early_stop_patience``, and its trace.

pacemaker (pyace's GeneralACEFit) stops the optimiser cleanly when, over its
``early_stopping_patience`` iterations, every relative change of the test loss per iteration
(the train loss with ``min_relative_train_loss_per_iter``) stays above
``-min_relative_test_loss_per_iter``; it then saves and predicts as after a normal end and logs
'EARLY STOPPING'. The test loss is evaluated every ``display_step`` iterations, so N
evaluations without improvement are (N + 1) * display_step iterations of patience (N changes
between N + 1 evaluations), and an improvement r per evaluation is r / display_step per
iteration.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mlip_autopipec.config.config_model import FitSettings
from mlip_autopipec.domain_models.fit_stop import FitStop
from mlip_autopipec.infrastructure.pacemaker.log import read_fit_timing

log = logging.getLogger(__name__)

#: What pacemaker logs when its early stopping ends the fit.
EARLY_STOP_MARKER = "EARLY STOPPING"


def early_stopping_keys(fit: FitSettings) -> dict[str, Any]:
    """pacemaker's ``fit`` keys for ``fit.early_stop_patience`` (empty without it)."""
    if fit.early_stop_patience is None:
        return {}
    per_iteration = fit.early_stop_min_improvement / fit.display_step
    loss = (
        "min_relative_test_loss_per_iter"
        if fit.test_size > 0
        else "min_relative_train_loss_per_iter"
    )
    return {
        "early_stopping_patience": (fit.early_stop_patience + 1) * fit.display_step,
        loss: per_iteration,
    }


def stopped_early(log_path: Path) -> bool:
    """Whether the last pacemaker run logged in ``log_path`` was ended by its early stopping."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    lines = text.splitlines()
    # The runner opens every run with '=== <time> running in <dir>: <command>'.
    starts = [
        i for i, line in enumerate(lines) if line.startswith("=== ") and " running in " in line
    ]
    return any(EARLY_STOP_MARKER in line for line in lines[starts[-1] if starts else 0 :])


def early_stop_record(log_path: Path) -> FitStop | None:
    """The record of a fit that pacemaker's early stopping ended (logged, with its iteration);
    None for any other end."""
    if not stopped_early(log_path):
        return None
    iterations = read_fit_timing(log_path).iterations
    log.info(
        "the loss had stopped improving: pacemaker stopped the fit early at iteration %d",
        iterations,
    )
    return FitStop(stopped_at_iteration=iterations, early_stop=True)
