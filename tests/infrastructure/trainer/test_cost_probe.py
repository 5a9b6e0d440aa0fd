"""The measured cost estimate: the basis timed on the data, and the model when it cannot be."""

from __future__ import annotations

import logging
import math
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from ase.neighborlist import neighbor_list

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.infrastructure.trainer import PacemakerTrainer, budget, cost
from mlip_autopipec.infrastructure.trainer.budget import size_fit
from mlip_autopipec.infrastructure.trainer.cost_probe import (
    ProbeTiming,
    ProbeUnavailable,
    probe_interpreter,
    run_probe,
)
from mlip_autopipec.infrastructure.trainer.profile import program_environment
from mlip_autopipec.infrastructure.trainer.runner import resolve_executable


def write_executable(path: Path, body: str) -> Path:
    """A Python script run by this interpreter, executable."""
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _sized(dataset: Dataset, pacemaker: str, **fit: Any) -> budget.SizedFit:
    config = parse_trainer_config(
        {
            "type": "pacemaker",
            "cutoff": 4.5,
            "threads": 1,
            "ace_params": {"number_of_functions_per_element": 4},
            "fit": fit,
        }
    )
    plan = PacemakerTrainer(config).plan_run(dataset)
    return size_fit(
        plan.pacemaker_input,
        dataset,
        config.fit,
        basis_given=True,
        threads=1,
        pacemaker=pacemaker,
        environment=program_environment(config),
    )


@pytest.mark.requires_pacemaker
def test_the_basis_is_timed_on_the_data_and_scaled_to_the_training_set(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(budget, "PROBE_SHARE", math.inf)  # a tiny fit: measure all the same
    probes: list[ProbeTiming] = []

    def recording(*args: Any, **kwargs: Any) -> ProbeTiming:
        probes.append(run_probe(*args, **kwargs))
        return probes[-1]

    monkeypatch.setattr(budget, "run_probe", recording)
    caplog.set_level(logging.INFO)
    sized = _sized(cu_pt_dataset, resolve_executable("pacemaker"), maxiter=50, test_size=0.25)

    assert "measuring the cost of an iteration" in caplog.text
    (probe,) = probes
    sample = cost.sample_structures(cu_pt_dataset, 0)
    assert probe.sample_structures == len(sample) == len(cu_pt_dataset)  # fewer atoms than 400
    assert probe.sample_atoms == cu_pt_dataset.n_atoms
    assert probe.sample_pairs == sum(len(neighbor_list("i", a, 4.5)) for a in sample)
    assert probe.total_functions == 8  # 4 per element, two elements
    assert probe.seconds_one_batch > 0 and probe.seconds_per_structure_batches > 0
    assert 0 < probe.startup_s < probe.wall_s

    estimate = sized.estimate
    assert estimate is not None and estimate.method == "measured"
    assert f"{probe.sample_atoms} atoms of the data" in estimate.note
    fitted_pairs = estimate.fitted_atoms * probe.sample_pairs / probe.sample_atoms
    batches = math.ceil(len(cu_pt_dataset) * 0.75 / 100)
    assert estimate.seconds_per_iteration == pytest.approx(
        cost.EVALS_PER_ITERATION
        * (batches * probe.seconds_per_batch + fitted_pairs * probe.seconds_per_pair)
    )
    assert "; measured: " in estimate.describe(50)


def test_probe_timing_separates_pairs_from_batches() -> None:
    probe = ProbeTiming(11, 400, 20000, 80, 0.5, 1.5, 30.0, 8.0, 40.0)
    assert probe.seconds_per_batch == pytest.approx(0.1)  # 1 s more for 10 more batches
    assert probe.seconds_per_pair == pytest.approx(0.4 / 20000)
    noisy = ProbeTiming(11, 400, 20000, 80, 0.5, 0.4, 30.0, 8.0, 40.0)
    assert noisy.seconds_per_batch == 0.0 and noisy.seconds_per_pair == pytest.approx(0.5 / 20000)


def test_only_python_aces_pacemaker_is_probed(tmp_path: Path) -> None:
    fake = write_executable(tmp_path / "pacemaker", "import sys\nsys.exit(0)\n")
    with pytest.raises(ProbeUnavailable, match="not python-ace's pacemaker"):
        probe_interpreter(str(fake))
    wrapper = tmp_path / "wrapped"
    wrapper.write_text("#!/bin/sh\nexec python -c 'import pyace' \"$@\"\n")
    with pytest.raises(ProbeUnavailable, match="not run by a plain Python"):
        probe_interpreter(str(wrapper))
    real_like = write_executable(tmp_path / "pace", "from pyace.cli.pacemaker import main\n")
    assert probe_interpreter(str(real_like)) == sys.executable


@pytest.mark.requires_pacemaker  # the model counts pyace's functions
def test_a_fake_pacemaker_gets_the_model_and_says_why(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "PROBE_SHARE", math.inf)
    fake = write_executable(tmp_path / "pacemaker", "import sys\n")
    sized = _sized(cu_pt_dataset, str(fake), maxiter=50)
    assert sized.estimate is not None and sized.estimate.method == "model"
    assert "not python-ace's pacemaker" in sized.estimate.note
    assert "; model: not measured: " in sized.estimate.describe(50)


@pytest.mark.requires_pacemaker  # the model counts pyace's functions
def test_a_probe_dearer_than_its_share_of_the_fit_is_not_run(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any, **kwargs: Any) -> ProbeTiming:
        raise AssertionError("the probe ran")

    monkeypatch.setattr(budget, "run_probe", never)
    sized = _sized(cu_pt_dataset, resolve_executable(sys.executable), maxiter=5)
    assert sized.estimate is not None and sized.estimate.method == "model"
    assert "more than 10% of the fit" in sized.estimate.note


@pytest.mark.requires_pacemaker  # the model counts pyace's functions
def test_a_failing_or_slow_probe_falls_back_to_the_model(
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(budget, "PROBE_SHARE", math.inf)
    broken = write_executable(tmp_path / "python3", "import sys\nsys.exit('no tensorflow here')\n")
    monkeypatch.setattr(budget, "probe_interpreter", lambda pacemaker: str(broken))
    sized = _sized(cu_pt_dataset, "pacemaker", maxiter=50)
    assert sized.estimate is not None and sized.estimate.method == "model"
    assert "no tensorflow here" in sized.estimate.note
    assert "the cost could not be measured" in caplog.text

    slow = write_executable(tmp_path / "python_slow", "import time\ntime.sleep(60)\n")
    with pytest.raises(ProbeUnavailable, match="time limit"):
        run_probe(
            str(slow),
            {"elements": ["Cu"]},
            list(cu_pt_dataset.to_atoms()[:1]),
            kappa=0.5,
            environment={},
            time_limit_s=1.0,
        )
