"""After a fit: the cost rows of the report and the warnings about a thin test set."""

from __future__ import annotations

import logging

import pytest

from mlip_autopipec.domain_models.potential import FitCost
from mlip_autopipec.infrastructure.trainer.fit_record import cost_rows, warn_about_test_split


def test_cost_rows_put_the_estimate_beside_the_measurement() -> None:
    cost = FitCost(
        estimated_s_per_iteration=0.5,
        estimated_iterations=200,
        estimated_total_s=150.0,
        estimated_startup_s=40.0,
        time_budget_s=180.0,
        s_per_iteration=0.6,
        iterations=150,
        startup_s=55.0,
        fit_s=170.0,
        stopped_at_budget=True,
        still_improving="the fit had not converged: ...",
    )
    rows = dict((str(what), str(value)) for what, value in cost_rows(cost))
    assert rows["s per iteration, estimated / measured"] == "0.5 / 0.6"
    assert rows["iterations, planned / run"] == "200 / 150"
    assert rows["start-up s, estimated / measured"] == "40 / 55"
    assert rows["time budget s (ended the fit)"] == "180 (yes)"
    assert rows["not converged"].startswith("the fit had not converged")


@pytest.mark.parametrize(("n", "warned"), [(20, True), (49, True), (50, False), (1000, False)])
def test_a_test_split_of_fewer_than_five_structures_is_warned_about(
    n: int, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        warn_about_test_split(n, 0.1)
    assert ("the test set will hold" in caplog.text) is warned


def test_no_test_set_is_no_thin_test_set(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_about_test_split(20, 0.0)
    assert caplog.text == ""
