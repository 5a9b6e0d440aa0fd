"""Sizing a fit to its time budget: iterations, a smaller basis, and a budget too short."""

from __future__ import annotations

from typing import Any

import pytest

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.pacemaker.deadline import CALLBACK_NAME
from mlip_autopipec.infrastructure.trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.cost import budget
from mlip_autopipec.infrastructure.trainer.cost.budget import (
    BUDGET_MAXITER_FACTOR,
    size_fit,
    with_deadline_callback,
)
from mlip_autopipec.infrastructure.trainer.cost.estimate import CostEstimate


def _fake_estimate(monkeypatch: pytest.MonkeyPatch, seconds_per_function: float) -> list[int]:
    """Estimates that cost seconds_per_function per basis function and iteration; returns the
    functions per element of every estimate asked for."""
    asked: list[int] = []

    def fake(potential: dict[str, Any], dataset: Dataset, **_: Any) -> CostEstimate:
        functions = potential["functions"]["number_of_functions_per_element"]
        asked.append(functions)
        total = functions * len(potential["elements"])
        return CostEstimate(40.0, 400, 1000, total, 1.0, seconds_per_function * total, 30.0, 20.0)

    monkeypatch.setattr(budget, "estimate_cost", fake)
    return asked


def _size(dataset: Dataset, **settings: Any) -> budget.SizedFit:
    raw = {"type": "pacemaker", "cutoff": 4.5, **settings}
    config = parse_trainer_config(raw)
    plan = PacemakerTrainer(config).plan_run(dataset)
    return size_fit(
        plan.pacemaker_input,
        dataset,
        config.fit,
        basis_given=config.ace_params.number_of_functions_per_element is not None,
        threads=2,
        elapsed_s=10.0,
    )


def test_without_a_budget_maxiter_stands(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_estimate(monkeypatch, 0.01)
    sized = _size(cu_pt_dataset, fit={"maxiter": 300})
    assert (sized.planned_iterations, sized.maxiter, sized.optimiser_time_s) == (300, 300, None)
    assert sized.estimate is not None


def test_a_budget_sets_the_iterations_and_the_deadline(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_estimate(monkeypatch, 0.001)
    sized = _size(
        cu_pt_dataset,
        ace_params={"number_of_functions_per_element": 50},
        fit={"time_budget": "10min"},
    )
    # 600 s - 10 s spent - 30 s start-up - 20 s finishing at 0.1 s per iteration
    assert sized.planned_iterations == 5400
    assert sized.maxiter == BUDGET_MAXITER_FACTOR * 5400  # the budget ends the fit
    assert sized.pacemaker_input.fit.maxiter == sized.maxiter
    assert sized.optimiser_time_s == pytest.approx(600 - 10 - 20)


def test_a_given_maxiter_bounds_the_budgeted_fit(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_estimate(monkeypatch, 0.001)
    sized = _size(cu_pt_dataset, fit={"time_budget": "10min", "maxiter": 100})
    assert (sized.planned_iterations, sized.maxiter) == (100, 100)


def test_a_tight_budget_shrinks_a_basis_left_open(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _fake_estimate(monkeypatch, 0.005)
    sized = _size(cu_pt_dataset, fit={"time_budget": 100})
    # 40 s for iterations: at least MIN_BUDGET_ITERATIONS needs <= 40/200/0.005/2 = 20 per element
    assert asked[0] > asked[-1] and asked == sorted(asked, reverse=True)
    functions = sized.pacemaker_input.potential.functions["number_of_functions_per_element"]
    assert functions == asked[-1] <= 20
    assert sized.planned_iterations >= budget.MIN_BUDGET_ITERATIONS


def test_a_basis_is_not_shrunk_below_the_minimum_per_block(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _fake_estimate(monkeypatch, 0.05)
    sized = _size(cu_pt_dataset, fit={"time_budget": 100})
    assert asked[-1] == 12  # 6 per block, 2 blocks per element: fewer iterations instead
    assert sized.planned_iterations == 33  # 40 s at 1.2 s per iteration


def test_a_given_basis_is_kept_within_a_tight_budget(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _fake_estimate(monkeypatch, 0.01)
    sized = _size(
        cu_pt_dataset, ace_params={"number_of_functions_per_element": 40}, fit={"time_budget": 150}
    )
    assert asked == [40]
    assert sized.planned_iterations == 112  # 90 s at 0.8 s per iteration


def test_a_budget_shorter_than_the_start_up_is_a_configuration_error(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_estimate(monkeypatch, 0.01)
    with pytest.raises(ConfigurationError, match=r"trainer\.fit\.time_budget: 40 s is too short"):
        _size(cu_pt_dataset, fit={"time_budget": 40})


def test_without_an_estimate_the_budget_still_ends_the_fit(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> CostEstimate:
        raise RuntimeError("no pyace here")

    monkeypatch.setattr(budget, "estimate_cost", broken)
    sized = _size(cu_pt_dataset, fit={"time_budget": 100})
    assert sized.estimate is None and sized.optimiser_time_s is not None
    assert "no cost estimate" in caplog.text and "no pyace here" in caplog.text


def test_the_deadline_callback_is_added_to_the_input(cu_pt_dataset: Dataset) -> None:
    config = parse_trainer_config({"type": "pacemaker", "cutoff": 4.5})
    plan = PacemakerTrainer(config).plan_run(cu_pt_dataset)
    assert "callbacks" not in plan.pacemaker_input.to_yaml_dict()["fit"]
    with_callback = with_deadline_callback(plan.pacemaker_input)
    assert with_callback.to_yaml_dict()["fit"]["callbacks"] == [CALLBACK_NAME]
