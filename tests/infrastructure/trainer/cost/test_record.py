"""After a fit: the cost rows of the report and the warnings about a thin test set."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mlip_autopipec.domain_models.potential import FitCost
from mlip_autopipec.infrastructure.trainer.cost.record import (
    cost_rows,
    measured_cost,
    warn_about_test_set,
    warn_about_test_split,
)


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
        estimate_method="measured",
        estimate_note="400 atoms of the data, 80 functions, timed in 30 s",
    )
    rows = dict((str(what), str(value)) for what, value in cost_rows(cost))
    assert rows["estimated by"] == "measured (400 atoms of the data, 80 functions, timed in 30 s)"
    assert rows["s per iteration, estimated / measured"] == "0.5 / 0.6"
    assert rows["iterations, planned / run"] == "200 / 150"
    assert rows["start-up s, estimated / measured"] == "40 / 55"
    assert rows["time budget s (ended the fit)"] == "180 (yes)"
    assert rows["not converged"].startswith("the fit had not converged")


def test_a_batch_jobs_cost_is_read_from_its_log_alone(tmp_path: Path) -> None:
    record = (
        "2026-11-29 07:00:{:02d},000 - pyace.metrics_aggregator - INFO - "
        "Iteration   #{}    ({} evals):        Loss: 1.0e+00"
    )
    lines = ["=== 2026-11-29T07:00:00 running in /run: pacemaker input.yaml"]
    lines += [record.format(10 + 2 * n, n, n + 2) for n in (1, 2, 3)]  # 2 s, one evaluation each
    (tmp_path / "pacemaker.log").write_text("\n".join(lines) + "\n")
    estimated = FitCost(
        estimated_s_per_iteration=1.5,
        estimated_iterations=3,
        estimated_total_s=30.0,
        estimate_method="model",
    )
    cost = measured_cost(tmp_path, tmp_path / "pacemaker.log", estimated)
    assert cost is not None and cost.estimate_method == "model"
    assert (cost.iterations, cost.s_per_iteration, cost.s_per_evaluation) == (3, 2.0, 2.0)
    assert cost.fit_s == 16.0  # from the runner's first line to the last record
    assert cost.startup_s == 10.0  # iteration 1 ended at 12 s, less one iteration
    assert measured_cost(tmp_path, tmp_path / "pacemaker.log", None) is None


@pytest.mark.parametrize(
    ("n", "test_size", "warned"),
    [(20, 0.1, True), (49, 0.1, True), (50, 0.1, False), (1000, 0.1, False), (20, 0.0, False)],
)
def test_a_test_split_of_fewer_than_five_structures_is_warned_about(
    n: int, test_size: float, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # test_size 0 is no test set (test on a separate dataset): nothing to warn about.
    with caplog.at_level(logging.WARNING):
        warn_about_test_split(n, test_size)
    assert ("the test set will hold" in caplog.text) is warned


@pytest.mark.parametrize(
    ("symbols", "thin"),
    [
        (["Cu"] * 10 + ["Pt"] * 9, "Pt (9)"),
        (["Cu"] * 12, "Pt (0)"),
        (["Cu"] * 10 + ["Pt"] * 10, None),
        ([], None),  # no test set: nothing to check
    ],
)
def test_an_element_with_fewer_than_ten_test_atoms_is_warned_about(
    symbols: list[str], thin: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        warn_about_test_set(symbols, ["Cu", "Pt"])
    if thin is None:
        assert caplog.text == ""
    else:
        assert f"the test set holds few atoms of {thin}:" in caplog.text
        assert "Cu (" not in caplog.text  # ten atoms of Cu are enough
