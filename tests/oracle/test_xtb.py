"""GFN2-xTB oracle (tblite): labelled MD frames of C/H/O molecules, bonds set shorter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlip_autopipec.config.config_model import ZBLBaseline, parse_trainer_config
from mlip_autopipec.domain_models.baseline import covalent_distance
from mlip_autopipec.domain_models.dataset import Dataset, shortest_distances
from mlip_autopipec.infrastructure.trainer import MockTrainer
from mlip_autopipec.oracle.xtb import label_with_xtb, md_frames, shorten_bond


@pytest.fixture(scope="module")
def molecules() -> Dataset:
    """A few xTB MD frames of methanol and water: C, H, O, and no O-O pair."""
    frames = md_frames("CH3OH", 4, steps_between=3, seed=1) + md_frames("H2O", 3, seed=2)
    return Dataset.from_atoms(frames, source="xTB MD")


def test_frames_are_labelled_like_a_single_point(molecules: Dataset) -> None:
    assert molecules.elements == ("C", "H", "O")
    assert molecules[0].name == "CH3OH_0"
    again = label_with_xtb([molecules[1].atoms])
    assert again[0].energy == pytest.approx(
        molecules[1].energy, abs=1e-6
    )  # the MD's SCF starts from the last step
    np.testing.assert_allclose(again[0].forces, molecules[1].forces, atol=1e-3)
    assert len({round(s.energy, 6) for s in molecules}) == len(molecules)


def test_shorten_bond_sets_the_shortest_bond_of_the_pair(molecules: Dataset) -> None:
    atoms = molecules[0].atoms
    shorter = shorten_bond(atoms, ("C", "O"), 1.2)
    assert shorter is not None
    symbols = shorter.get_chemical_symbols()
    c, o = symbols.index("C"), symbols.index("O")
    assert shorter.get_distance(c, o) == pytest.approx(1.2)
    assert shorter.positions[c] + shorter.positions[o] == pytest.approx(
        atoms.positions[c] + atoms.positions[o]
    )
    assert shorten_bond(atoms, ("O", "O"), 1.2) is None


def test_per_pair_zbl_on_molecules_covers_the_absent_pair(
    molecules: Dataset, tmp_path: Path
) -> None:
    config = parse_trainer_config(
        {"type": "mock", "cutoff": 4.0, "b_ref": {"type": "zbl"}, "fit": {"test_size": 0.0}}
    )
    potential = MockTrainer(config).train(molecules, tmp_path / "run")
    baseline = potential.baseline
    assert isinstance(baseline, ZBLBaseline)
    distances = shortest_distances(molecules, 4.0)
    assert ("O", "O") not in distances
    assert set(baseline.pair_cutoffs) == {"C-C", "C-H", "C-O", "H-H", "H-O", "O-O"}
    for key, (inner, outer) in baseline.pair_cutoffs.items():
        pair = tuple(key.split("-"))
        shortest = distances.get(pair, covalent_distance(*pair))  # type: ignore[arg-type]
        assert outer == pytest.approx(shortest, abs=1e-3), key
        assert inner < outer
    zbl_lines = [line for line in potential.lammps_commands() if " zbl " in line]
    assert len(zbl_lines) == 1 + 6  # the pair_style line and one pair_coeff per pair
