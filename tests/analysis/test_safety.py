"""Compression check of the safety gate: structures scaled down to 0.6 of their volume."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import BaseCalculator

from mlip_autopipec.analysis.safety import (
    SafetyReport,
    check_compression,
    compressed,
    compression_sample,
    run_safety_checks,
)
from mlip_autopipec.config.config_model import LJBaseline
from mlip_autopipec.domain_models.baseline import (
    BaselineCalculator,
    LennardJonesPotential,
    ZBLPotential,
)
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.oracle.emt import label_with_emt


def test_compressed_scales_volume_of_cells_and_molecules() -> None:
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True)
    assert compressed(crystal, 0.6).get_volume() == pytest.approx(0.6 * crystal.get_volume())
    water = molecule("H2O")
    small = compressed(water, 0.6)
    ratio = small.get_distance(0, 1) / water.get_distance(0, 1)
    assert ratio == pytest.approx(0.6 ** (1 / 3))
    assert small.positions.mean(axis=0) == pytest.approx(water.positions.mean(axis=0))


def test_a_repulsive_potential_passes() -> None:
    calculator = BaselineCalculator(ZBLPotential(inner_cutoff=1.0, outer_cutoff=3.0))
    check = check_compression(calculator, bulk("Cu", "fcc", a=3.6, cubic=True), 4, "fcc")
    assert check.passed and check.failure() is None
    assert check.energy_rise_ev > 0


def test_an_energy_that_falls_under_compression_fails_naming_structure_and_distance() -> None:
    # A Lennard-Jones well at 2.0 * 2**(1/6) Å: an fcc cell at 3.6 Å (nearest 2.55 Å) falls
    # into it as it is compressed, which must be flagged.
    baseline = LJBaseline(epsilon={"Cu": 1.0}, sigma={"Cu": 1.6}, cutoff=4.0)
    calculator = BaselineCalculator(LennardJonesPotential.from_config(baseline, ["Cu"]))
    check = check_compression(calculator, bulk("Cu", "fcc", a=3.6, cubic=True), 7, "fcc_7")
    assert not check.passed
    failure = check.failure()
    assert failure is not None
    assert "structure 7 'fcc_7'" in failure and "of its volume" in failure
    assert check.violation_shortest_distance is not None
    assert failure.endswith(f"{check.violation_shortest_distance:.3f} Å)")
    report = SafetyReport((), (check,))
    assert not report.passed and report.failures == [failure]


def test_the_sample_is_spread_over_the_data_and_skips_single_atoms() -> None:
    images = [Atoms("Cu", cell=[8, 8, 8], pbc=True)]
    for k in range(10):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.01 * k, cubic=True)
        images.append(atoms)
    dataset: Dataset = label_with_emt(images)
    sample = compression_sample(dataset, count=5)
    assert 0 not in sample
    assert len(sample) == 5 and sample[0] == 1 and sample[-1] == 10
    assert np.all(np.diff(sample) > 0)


def _missing(module: str) -> Callable[[], BaseCalculator]:
    def make_calculator() -> BaseCalculator:
        raise ModuleNotFoundError(f"No module named '{module}'", name=module)

    return make_calculator


def test_without_pyace_the_gate_is_not_run_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = label_with_emt([bulk("Cu", "fcc", a=3.6) * (2, 1, 1)])
    with caplog.at_level(logging.WARNING):
        report = run_safety_checks(
            _missing("pyace"), ["Cu"], 5.0, {}, data, tmp_path / "dimers.png"
        )
    assert report.passed is None and report.failures == []
    assert report.not_run is not None and "pyace is not installed" in report.not_run
    assert "UNCHECKED" in caplog.text
    assert not (tmp_path / "dimers.png").exists()


def test_any_other_missing_module_is_not_taken_for_a_missing_pyace(tmp_path: Path) -> None:
    data = label_with_emt([bulk("Cu", "fcc", a=3.6) * (2, 1, 1)])
    with pytest.raises(ModuleNotFoundError, match="tensorflow"):
        run_safety_checks(_missing("tensorflow"), ["Cu"], 5.0, {}, data, tmp_path / "d.png")
