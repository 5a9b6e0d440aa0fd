"""Potential: the record of a trained potential, saved beside its files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from mlip_autopipec.config.config_model import NoBaseline, ZBLBaseline
from mlip_autopipec.domain_models.checks import CompressionCheck
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.metrics import FitMetrics
from mlip_autopipec.domain_models.potential import FitCost, Potential, Provenance, Selection

from ..conftest import TEST_DATA


def _potential(run_dir: Path) -> Potential:
    return Potential(
        run_dir=run_dir,
        trainer="pacemaker",
        yace_file="potential.yace",
        yaml_file="output_potential.yaml",
        elements=("Cu", "Pt"),
        cutoff=5.0,
        baseline=ZBLBaseline(inner_cutoff=1.0, outer_cutoff=2.0),
        reference_energies={"Cu": -3.5, "Pt": -5.1},
        train_metrics=FitMetrics(
            energy_rmse_mev_per_atom=3.0,
            energy_mae_mev_per_atom=2.0,
            force_rmse_mev_per_angstrom=40.0,
            force_mae_mev_per_angstrom=30.0,
            n_structures=90,
        ),
        provenance=Provenance(
            tool_versions={"python-ace": "0.4.0rc1"},
            data_sha256="d" * 64,
            config_sha256="c" * 64,
            n_structures=100,
            n_atoms=1600,
        ),
    )


def test_save_and_load_round_trip_with_paths_relative_to_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    potential = _potential(run)
    record = potential.save()

    stored = json.loads(record.read_text())
    assert stored["yace_file"] == "potential.yace"
    assert "run_dir" not in stored
    assert Potential.load(record) == potential
    assert Potential.load(run) == potential


def test_a_moved_run_directory_still_points_at_its_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "potential.yace").write_text("elements: [Cu, Pt]\n")
    _potential(run).save()
    shutil.move(run, tmp_path / "moved")

    moved = Potential.load(tmp_path / "moved")
    assert moved.yace_path == (tmp_path / "moved" / "potential.yace").resolve()
    assert moved.yace_path.exists()


def test_lammps_commands_keep_the_element_order_of_the_potential(tmp_path: Path) -> None:
    commands = _potential(tmp_path).model_copy(update={"baseline": NoBaseline()}).lammps_commands()
    assert commands[0] == "pair_style pace"
    assert commands[1].endswith("potential.yace Cu Pt")


def test_a_finished_record_with_every_part_round_trips(tmp_path: Path) -> None:
    potential = _potential(tmp_path).model_copy(
        update={
            "active_set_file": "output_potential.asi",
            "gamma_tolerance": 1.5,
            "reference_energies_warning": "one composition: the split is arbitrary",
            "test_metrics": FitMetrics(
                energy_rmse_mev_per_atom=4.0,
                energy_mae_mev_per_atom=3.0,
                force_rmse_mev_per_angstrom=50.0,
                force_mae_mev_per_angstrom=45.0,
                n_structures=10,
            ),
            "selection": Selection(
                method="D-optimal (pace_select)",
                n_selected=2,
                n_total=5,
                indices=(4, 1),
                names=("e", "b"),
                file="selection/selection.json",
                n_atoms=16,
            ),
            "compression_checks": (
                CompressionCheck(
                    index=3,
                    name="alloy_3",
                    passed=False,
                    violation_volume_fraction=0.62,
                    violation_shortest_distance=1.71,
                    energy_rise_ev=-0.25,
                ),
            ),
            "checks_passed": False,
            "cost": FitCost(
                estimated_s_per_iteration=0.2,
                estimated_iterations=600,
                estimated_total_s=150.0,
                time_budget_s=180.0,
                s_per_iteration=0.25,
                iterations=500,
                stopped_at_budget=True,
            ),
        }
    )
    potential.save()
    with pytest.warns(UserWarning, match="FAILED its safety checks"):
        loaded = Potential.load(tmp_path)
    assert loaded == potential
    assert loaded.selection is not None and loaded.selection.indices == (4, 1)
    assert loaded.active_set_path == tmp_path.resolve() / "output_potential.asi"


def _energies_and_forces(
    potential: Potential, structures: list[Atoms], extrapolation: bool
) -> list[np.ndarray]:
    calculator = potential.ase_calculator(extrapolation=extrapolation)
    results = []
    for atoms in structures:
        atoms = atoms.copy()
        atoms.calc = calculator
        results += [np.array([atoms.get_potential_energy()]), atoms.get_forces()]
    return results


@pytest.mark.requires_pacemaker
def test_a_potential_read_back_from_its_moved_files_gives_the_same_energies(
    tmp_path: Path, cu_pt_dataset: Dataset
) -> None:
    from mlip_autopipec.infrastructure.pacemaker.potential_file import set_reference_energies

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(TEST_DATA / "tiny_CuPt.yace", run / "potential.yace")
    shutil.copy(TEST_DATA / "tiny_CuPt_output_potential.yaml", run / "output_potential.yaml")
    shutil.copy(TEST_DATA / "tiny_CuPt_output_potential.asi", run / "output_potential.asi")
    reference_energies = {"Cu": -3.5, "Pt": -5.1}
    set_reference_energies(run / "potential.yace", reference_energies)
    potential = _potential(run).model_copy(
        update={
            "active_set_file": "output_potential.asi",
            "reference_energies": reference_energies,
            "baseline": ZBLBaseline(
                pair_cutoffs={"Cu-Cu": (1.2, 2.2), "Cu-Pt": (1.0, 2.0), "Pt-Pt": (1.3, 2.3)}
            ),
        }
    )
    potential.save()
    # Bulk cells and a dimer inside the ZBL region: ACE, reference energies and baseline count.
    structures = [*cu_pt_dataset.to_atoms()[:3], Atoms("CuPt", positions=[[0, 0, 0], [0, 0, 1.6]])]
    original = _energies_and_forces(potential, structures, extrapolation=False)
    graded = _energies_and_forces(potential, structures, extrapolation=True)

    shutil.move(run, tmp_path / "moved")
    reloaded = Potential.load(tmp_path / "moved")

    assert reloaded.model_copy(update={"run_dir": potential.run_dir}) == potential
    for before, after in zip(
        original, _energies_and_forces(reloaded, structures, extrapolation=False), strict=True
    ):
        np.testing.assert_allclose(after, before, rtol=1e-12, atol=1e-12)
    for before, after in zip(
        graded, _energies_and_forces(reloaded, structures, extrapolation=True), strict=True
    ):
        np.testing.assert_allclose(after, before, rtol=1e-12, atol=1e-12)
    # The extrapolation calculator adds the reference energies the .yaml lacks: same energies.
    np.testing.assert_allclose(graded[0::2], original[0::2], rtol=1e-9)
