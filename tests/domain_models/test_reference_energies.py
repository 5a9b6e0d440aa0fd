"""Per-element reference energies: fitted exactly where the data allow, or given per element."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.reference_energies import (
    composition_matrix,
    fit_reference_energies,
    resolve_reference_energies,
)

E_CU = -3.7312
E_PT = -5.8541


def synthetic(compositions: list[tuple[int, int]], noise: float = 0.0) -> Dataset:
    """fcc cells with n_Cu Cu and n_Pt Pt atoms and energy n_Cu * E_CU + n_Pt * E_PT (+ noise)."""
    rng = np.random.default_rng(1)
    images = []
    for n_cu, n_pt in compositions:
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))[: n_cu + n_pt]
        atoms.symbols[n_cu:] = "Pt"
        energy = n_cu * E_CU + n_pt * E_PT + noise * rng.normal()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((len(atoms), 3)))
        images.append(atoms)
    return Dataset.from_atoms(images)


def test_composition_matrix_counts_atoms_per_element() -> None:
    dataset = synthetic([(8, 0), (5, 3), (0, 2)])
    assert np.array_equal(composition_matrix(dataset, ("Cu", "Pt")), [[8, 0], [5, 3], [0, 2]])
    assert np.array_equal(composition_matrix(dataset, ("Pt", "Cu")), [[0, 8], [3, 5], [2, 0]])


def test_fit_recovers_the_per_element_energies() -> None:
    fitted = fit_reference_energies(synthetic([(8, 0), (6, 2), (4, 4), (1, 7), (3, 1)]))

    assert list(fitted) == ["Cu", "Pt"]
    assert fitted["Cu"] == pytest.approx(E_CU, abs=1e-10)
    assert fitted["Pt"] == pytest.approx(E_PT, abs=1e-10)


def test_fit_is_a_least_squares_fit_with_noise() -> None:
    fitted = fit_reference_energies(synthetic([(8, 0), (6, 2), (4, 4), (1, 7)] * 10, noise=1e-3))
    assert fitted["Cu"] == pytest.approx(E_CU, abs=1e-3)
    assert fitted["Pt"] == pytest.approx(E_PT, abs=1e-3)


def test_fit_of_a_single_element() -> None:
    assert fit_reference_energies(synthetic([(8, 0), (3, 0)])) == {"Cu": pytest.approx(E_CU)}


def test_fit_with_dependent_compositions_explains_the_energies() -> None:
    # Only the 1:1 composition: any split of the pair energy fits; the minimum-norm one is taken.
    fitted = fit_reference_energies(synthetic([(4, 4), (2, 2)]))
    assert fitted["Cu"] + fitted["Pt"] == pytest.approx(E_CU + E_PT)
    assert fitted["Cu"] == pytest.approx(fitted["Pt"])


def test_resolve_auto_fits() -> None:
    dataset = synthetic([(8, 0), (4, 4), (2, 6)])
    assert resolve_reference_energies("auto", dataset) == pytest.approx(
        {"Cu": E_CU, "Pt": E_PT}, abs=1e-10
    )


def test_resolve_a_mapping_keeps_the_dataset_elements_only() -> None:
    dataset = synthetic([(8, 0), (4, 4)])
    resolved = resolve_reference_energies({"Pt": -5, "Cu": -3, "Au": -2}, dataset)

    assert resolved == {"Cu": -3.0, "Pt": -5.0}
    assert list(resolved) == ["Cu", "Pt"]
    assert all(isinstance(value, float) for value in resolved.values())


def test_resolve_a_mapping_missing_an_element_names_it() -> None:
    atoms = Atoms("CuPtAu", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((3, 3)))
    dataset = Dataset.from_atoms([atoms])

    with pytest.raises(ValueError, match=r"no value for \['Au', 'Pt'\]") as caught:
        resolve_reference_energies({"Cu": -3.0}, dataset)
    assert "(elements of the dataset: ['Au', 'Cu', 'Pt'])" in str(caught.value)


def test_resolve_another_string_is_rejected() -> None:
    with pytest.raises(ValueError, match="'auto' or a mapping, got 'fit'"):
        resolve_reference_energies("fit", synthetic([(8, 0)]))
