"""The baseline's labels of training structures: searched only where the baseline reaches."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config.config_model import LJBaseline, ZBLBaseline
from mlip_autopipec.domain_models.baseline import pair_potential, resolve_baseline
from mlip_autopipec.domain_models.baseline_labels import baseline_labels, reaches
from mlip_autopipec.domain_models.neighbours import NeighbourTable


def _structures() -> list[Atoms]:
    rng = np.random.default_rng(7)
    structures = []
    for k in range(4):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 1, 1)
        atoms.symbols[: 2 + k] = "Pt"
        atoms.positions += rng.normal(0.0, 0.12, atoms.positions.shape)
        structures.append(atoms)
    structures.append(Atoms("CuPt", positions=[[0, 0, 0], [0, 0, 1.9]]))  # a short pair
    return structures


def _evaluated(potential, structures):  # type: ignore[no-untyped-def]
    return [potential.energy_and_forces(atoms) for atoms in structures]


@pytest.mark.parametrize(
    "baseline",
    [
        ZBLBaseline(),  # cutoffs from the data: reaches no pair of the data
        ZBLBaseline(inner_cutoff=1.0, outer_cutoff=2.3),  # reaches some pairs
        LJBaseline(epsilon={"Cu": 0.4, "Pt": 0.6}, sigma={"Cu": 2.3, "Pt": 2.5}, cutoff=4.5),
    ],
)
def test_labels_equal_the_potential_evaluated_on_every_structure(baseline: object) -> None:
    structures = _structures()
    table = NeighbourTable(5.0)
    shortest = table.shortest_distances(structures)
    potential = pair_potential(resolve_baseline(baseline, shortest, ["Cu", "Pt"]), ["Cu", "Pt"])  # type: ignore[arg-type]
    assert potential is not None

    labels = baseline_labels(potential, structures, table)

    for (energy, forces), (expected_energy, expected_forces) in zip(
        labels, _evaluated(potential, structures), strict=True
    ):
        assert energy == pytest.approx(expected_energy, abs=1e-12)
        np.testing.assert_allclose(forces, expected_forces, atol=1e-12)


def test_zbl_from_the_data_is_searched_nowhere_and_given_cutoffs_where_they_reach() -> None:
    structures = _structures()
    table = NeighbourTable(5.0)
    shortest = table.shortest_distances(structures)
    from_data = pair_potential(
        resolve_baseline(ZBLBaseline(), shortest, ["Cu", "Pt"]), ["Cu", "Pt"]
    )
    given = pair_potential(
        resolve_baseline(ZBLBaseline(inner_cutoff=1.0, outer_cutoff=2.0), shortest, ["Cu", "Pt"]),
        ["Cu", "Pt"],
    )
    assert from_data is not None and given is not None

    assert not any(reaches(from_data, table.of(atoms), table.cutoff) for atoms in structures)
    assert reaches(given, table.of(structures[-1]), table.cutoff)  # the 1.9 Å pair
    # A table found within less than the potential's cutoff cannot tell: it reaches.
    assert reaches(given, NeighbourTable(1.5).of(structures[0]), 1.5)
