"""The cost estimate: the basis timed in this process on a sample of the data."""

from __future__ import annotations

import pytest

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.config.durations import format_duration
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.infrastructure.trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.cost import estimate as cost
from mlip_autopipec.infrastructure.trainer.cost.estimate import CostEstimate, estimate_cost


def _estimate(**overrides: float) -> CostEstimate:
    values = {
        "mean_neighbours": 40.0,
        "sample_atoms": 400,
        "fitted_atoms": 1000,
        "total_functions": 80,
        "contention": 1.0,
        "seconds_per_iteration": 0.5,
        "startup_s": 30.0,
        "finish_s": 20.0,
    } | overrides
    return CostEstimate(**values)  # type: ignore[arg-type]


def test_total_and_iterations_within_a_budget() -> None:
    estimate = _estimate()
    assert estimate.total_s(100) == pytest.approx(100.0)
    assert estimate.iterations_within(100.0) == 100
    assert estimate.iterations_within(40.0) == 0  # start-up and finishing take it all
    text = estimate.describe(100)
    assert text.startswith("about 0.5 s per iteration, 100 iterations: about 1m40s")


@pytest.mark.requires_pacemaker
def test_the_cost_follows_the_data_the_basis_and_the_threads(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cost.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    monkeypatch.setattr(cost.os, "cpu_count", lambda: 2)
    config = parse_trainer_config(
        {"type": "pacemaker", "cutoff": 4.5, "ace_params": {"number_of_functions_per_element": 8}}
    )
    plan = PacemakerTrainer(config).plan_run(cu_pt_dataset)
    potential = plan.pacemaker_input.to_yaml_dict()["potential"]
    estimate = estimate_cost(potential, cu_pt_dataset, test_size=0.25, threads=1)
    assert estimate.total_functions == 16  # 8 per element, two elements
    assert estimate.sample_atoms == cu_pt_dataset.n_atoms  # fewer than SAMPLE_ATOMS: all
    assert estimate.fitted_atoms == round(0.75 * cu_pt_dataset.n_atoms)
    # 12 strained fcc cells of 8 atoms and a dimer: about 40 neighbours within 4.5 Å
    assert 25 < estimate.mean_neighbours < 45
    assert estimate.seconds_per_iteration == pytest.approx(
        cost.US_PER_ATOM_NEIGHBOUR
        * 1e-6
        * estimate.fitted_atoms
        * estimate.mean_neighbours
        * 4.0  # sqrt(16 functions)
        * cost.CALIBRATION_THREADS  # one thread
        * (1.0 + 1)
        / 2
        / cost.CALIBRATION_CONTENTION  # (load + threads) / cores
    )
    assert estimate.contention == 1.0
    tracing = cost.TRACING_FIXED_S + 16 * cost.TRACING_PER_FUNCTION_S + 4 * cost.TRACING_PER_BLOCK_S
    assert estimate.startup_s == pytest.approx(
        (cost.STARTUP_FIXED_S + tracing * (1 + cost.TEST_TRACING_SHARE))  # with a test set
        / cost.CALIBRATION_CONTENTION
    )
    monkeypatch.setattr(cost.os, "getloadavg", lambda: (7.0, 1.0, 1.0))  # a busy machine
    busy = estimate_cost(potential, cu_pt_dataset, test_size=0.25, threads=1)
    assert busy.contention == 4.0
    assert busy.seconds_per_iteration == pytest.approx(4 * estimate.seconds_per_iteration)
    fewer = estimate_cost(potential, cu_pt_dataset[:4], test_size=0.25, threads=1)
    assert fewer.seconds_per_iteration < busy.seconds_per_iteration
    # A batch job's 16 cores are its own: this machine's load and cores do not count.
    job = estimate_cost(potential, cu_pt_dataset, test_size=0.25, threads=16, cores=16)
    assert job.contention == 1.0
    assert job.seconds_per_iteration == pytest.approx(estimate.seconds_per_iteration / 16)
    crowded = estimate_cost(potential, cu_pt_dataset, test_size=0.25, threads=32, cores=16)
    assert crowded.contention == 2.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (44.6, "45s"), (65, "1m05s"), (3600 + 180, "1h03m"), (-3, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_of_nan() -> None:
    assert format_duration(float("nan")) == "0s"
