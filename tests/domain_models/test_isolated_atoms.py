"""Atoms without neighbours: free-atom references and structures a fit cannot use."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.domain_models.dataset import Dataset, LabelledStructure
from mlip_autopipec.domain_models.isolated_atoms import (
    account_for_structures,
    atoms_without_neighbours,
)
from mlip_autopipec.domain_models.reference_energies import reference_energy_fit
from mlip_autopipec.errors import DatasetValidationError


def _structure(atoms: Atoms, energy: float, name: str) -> LabelledStructure:
    return LabelledStructure(atoms, energy, np.zeros((len(atoms), 3)), name)


@pytest.mark.parametrize(
    ("atoms", "lonely"),
    [
        (Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 6.4]]), [0, 1]),
        (Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.3]]), []),
        (Atoms("Cu3", positions=[[0, 0, 0], [0, 0, 2.3], [9, 9, 9]]), [2]),
        (Atoms("Cu", cell=[2.5, 2.5, 2.5], pbc=True), []),  # its images are its neighbours
        (Atoms("Cu", cell=[12, 12, 12], pbc=True), [0]),
    ],
)
def test_atoms_without_neighbours(atoms: Atoms, lonely: list[int]) -> None:
    assert atoms_without_neighbours(atoms, 5.0).tolist() == lonely


def test_free_atoms_are_references_and_lone_atoms_an_error_or_dropped() -> None:
    crystal = bulk("Cu", "fcc", a=3.6)
    structures = [
        _structure(crystal, -3.5, "bulk"),
        _structure(Atoms("Pt", cell=[15, 15, 15], pbc=True), -0.6, "Pt atom"),
        _structure(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 6.4]]), -0.5, "far pair"),
    ]
    dataset = Dataset(structures, source="set.extxyz")

    with pytest.raises(DatasetValidationError) as caught:
        account_for_structures(dataset, 5.0, drop=False)
    assert "structure 2 'far pair' in set.extxyz: atom 0 (Cu) has no neighbour" in str(caught.value)

    accounted = account_for_structures(dataset, 5.0, drop=True)
    assert [s.name for s in accounted.fit] == ["bulk"]
    assert accounted.free_atoms == (1,) and accounted.dropped == (2,)
    assert accounted.free_atom_energies == {"Pt": -0.6}


def test_known_reference_energies_are_kept_and_the_others_fitted() -> None:
    reference = {"Cu": -3.0, "Pt": -5.0}
    structures = []
    for n_cu, n_pt in [(2, 0), (1, 1), (3, 1), (0, 2)]:
        atoms = Atoms(
            "Cu" * n_cu + "Pt" * n_pt, positions=[[0, 0, 2.2 * k] for k in range(n_cu + n_pt)]
        )
        structures.append(_structure(atoms, n_cu * reference["Cu"] + n_pt * reference["Pt"], "s"))
    dataset = Dataset(structures)

    fitted = reference_energy_fit(dataset, known={"Pt": -5.0}).energies

    assert fitted == pytest.approx(reference)
    assert list(fitted) == ["Cu", "Pt"]
