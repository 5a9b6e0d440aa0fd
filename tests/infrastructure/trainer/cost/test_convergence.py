"""Whether the loss was still falling at the end of a fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlip_autopipec.infrastructure.trainer.cost.convergence import loss_trend, still_improving

HEADER = "ladder_step cycle_step iter_num loss rmse_epa rmse_f_comp\n"


def test_a_loss_still_falling_is_reported_with_what_more_iterations_would_give() -> None:
    iterations = np.arange(0, 101, 10, dtype=float)
    losses = 1.0 / (1.0 + iterations)  # falls as 1/n to the end
    trend = still_improving(iterations, losses)
    assert trend is not None
    assert (trend.from_iteration, trend.last_iteration) == (80, 100)
    assert trend.drop == pytest.approx(1 - 81 / 101)
    assert 0.3 < trend.doubling_gain < 0.6  # about half for a loss falling as 1/n
    message = trend.message(seconds_per_iteration=2.0, fit_s=260.0)
    assert "still falling by 20% over the last 20 of 100 iterations" in message
    assert "fit.maxiter: 200" in message and "fit.time_budget: 7m40s" in message
    continued = trend.message(2.0, 260.0, maxiter_setting="fit.upfit_maxiter")
    assert "fit.upfit_maxiter: 200" in continued and "fit.maxiter" not in continued


def test_a_flat_loss_is_not_reported() -> None:
    iterations = np.arange(0, 101, 10, dtype=float)
    losses = np.r_[np.linspace(1.0, 0.1, 6), np.full(5, 0.1)]
    assert still_improving(iterations, losses) is None


def test_too_short_a_curve_says_nothing() -> None:
    assert still_improving(np.array([0.0, 1.0]), np.array([1.0, 0.5])) is None


def test_the_test_curve_is_preferred_and_the_last_cycle_counts(tmp_path: Path) -> None:
    rows = [f"0 0 {n} {1.0 / (1 + n)} 0 0" for n in range(0, 101, 10)]
    (tmp_path / "test_metrics.txt").write_text(HEADER + "\n".join(rows) + "\n")
    flat = [f"0 0 {n} 1.0 0 0" for n in range(0, 101, 10)]
    (tmp_path / "metrics.txt").write_text(HEADER + "\n".join(flat) + "\n")
    trend = loss_trend(tmp_path)
    assert trend is not None and trend.subset == "test"
    (tmp_path / "test_metrics.txt").unlink()
    assert loss_trend(tmp_path) is None  # the flat train curve
    (tmp_path / "metrics.txt").write_text("not a table")
    assert loss_trend(tmp_path) is None
