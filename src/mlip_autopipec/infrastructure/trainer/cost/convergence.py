"""Whether a fit had converged: was its loss still falling at the end (pacemaker's metrics)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlip_autopipec.config.durations import format_duration
from mlip_autopipec.infrastructure.rundir.files import TEST_METRICS_TXT, TRAIN_METRICS_TXT

#: Share of the iterations at the end of the fit over which the trend is taken.
WINDOW = 0.2
#: A loss that fell by more than this fraction over the window was still improving.
THRESHOLD = 0.02


@dataclass(frozen=True)
class StillImproving:
    """The loss fell by ``drop`` (a fraction) from ``from_iteration`` to ``last_iteration``."""

    subset: str  # "test" or "train": which loss
    drop: float
    from_iteration: int
    last_iteration: int

    @property
    def doubling_gain(self) -> float:
        """Further fraction the loss would lose over as many iterations again, if it kept
        falling as a power of the iterations (the slope of the window on a log-log scale)."""
        exponent = -math.log(1.0 - self.drop) / math.log(self.last_iteration / self.from_iteration)
        return float(1.0 - 2.0 ** (-exponent))

    def message(
        self,
        seconds_per_iteration: float | None,
        fit_s: float | None,
        maxiter_setting: str = "fit.maxiter",
    ) -> str:
        """What to tell the user, with the ``maxiter_setting`` (fit.maxiter, or
        fit.upfit_maxiter for a continued fit) or budget that would help when the cost is
        known."""
        text = (
            f"the fit had not converged: the {self.subset} loss was still falling by "
            f"{self.drop:.0%} over the last {self.last_iteration - self.from_iteration} of "
            f"{self.last_iteration} iterations; twice the iterations would lower it by about "
            f"{self.doubling_gain:.0%} more if the trend holds"
        )
        if seconds_per_iteration is not None and fit_s is not None:
            budget = fit_s + self.last_iteration * seconds_per_iteration
            text += (
                f" ({maxiter_setting}: {2 * self.last_iteration} or fit.time_budget: "
                f"{format_duration(budget)})"
            )
        return text


def loss_trend(run_dir: Path) -> StillImproving | None:
    """The trend of the test loss (train loss without a test set) over the last iterations;
    None when it had levelled off, or when the curve is too short to tell."""
    for subset, name in (("test", TEST_METRICS_TXT), ("train", TRAIN_METRICS_TXT)):
        curve = _read_curve(run_dir / name)
        if curve is not None and len(curve) >= 3:
            return still_improving(curve[:, 0], curve[:, 1], subset=subset)
    return None


def still_improving(
    iterations: np.ndarray, losses: np.ndarray, *, subset: str = "test"
) -> StillImproving | None:
    """StillImproving when the loss fell by more than THRESHOLD over the last WINDOW of the
    iterations (the first point of the window is the last one at or before its start)."""
    last = int(iterations[-1])
    start = last * (1.0 - WINDOW)
    before = np.flatnonzero(iterations <= start)
    if last < 2 or before.size == 0 or iterations[before[-1]] < 1:
        return None
    first = int(before[-1])
    start_loss, end_loss = float(losses[first]), float(losses[-1])
    if not (math.isfinite(start_loss) and math.isfinite(end_loss)) or start_loss <= 0:
        return None
    drop = 1.0 - end_loss / start_loss
    if drop <= THRESHOLD or end_loss <= 0:
        return None
    return StillImproving(subset, drop, int(iterations[first]), last)


def _read_curve(path: Path) -> np.ndarray | None:
    """(iteration, loss) rows of the last fit cycle in pacemaker's metrics file, or None."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, sep=r"\s+")
        frame = frame[frame["cycle_step"] == frame["cycle_step"].max()]
        values = frame[["iter_num", "loss"]].to_numpy(dtype=float)
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return None
    return values if len(values) else None
