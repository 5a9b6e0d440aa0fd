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
    compositions_span_elements,
    fit_reference_energies,
    reference_energies_for,
    reference_energy_fit,
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
    # Only the 1:1 composition: any split of the pair energy fits; one shared shift is taken.
    fitted = fit_reference_energies(synthetic([(4, 4), (2, 2)]))
    assert fitted["Cu"] + fitted["Pt"] == pytest.approx(E_CU + E_PT)
    assert fitted["Cu"] == pytest.approx(fitted["Pt"])


def _molecule(symbols: str, energy: float, shift: float = 0.0) -> Atoms:
    atoms = Atoms(symbols)
    atoms.positions = [[1.1 * k + shift, 0.0, 0.0] for k in range(len(atoms))]
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((len(atoms), 3)))
    return atoms


def test_one_composition_gives_one_shared_shift_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Frames of one C/H/O molecule: only the energy of the whole molecule is determined.
    frames = [_molecule("C2H6O", -300.0 + 0.1 * k, shift=0.01 * k) for k in range(5)]
    dataset = Dataset.from_atoms(frames)
    fit = reference_energy_fit(dataset)

    per_atom = np.mean([-300.0 + 0.1 * k for k in range(5)]) / 9
    assert fit.energies == pytest.approx({"C": per_atom, "H": per_atom, "O": per_atom})
    assert fit.undetermined == ("C", "H", "O")
    assert fit.warning is not None
    assert "do not determine the per-atom energies of C, H, O" in fit.warning
    assert "rank 1 for 3 elements" in fit.warning
    assert "comparable only between structures of the trained compositions" in fit.warning
    assert "give trainer.reference_energies" in fit.warning
    with caplog.at_level("WARNING"):
        assert reference_energies_for("auto", dataset).warning == fit.warning
    assert "do not determine" in caplog.text


def test_free_atoms_fix_their_elements_and_the_rest_keeps_the_determined_sum() -> None:
    # The energy of a free H atom (found by domain_models.isolated_atoms) is given as known.
    frames = [_molecule("C2H6O", -300.0 - 0.2 * k, shift=0.01 * k) for k in range(4)]
    dataset = Dataset.from_atoms(frames)
    fit = reference_energy_fit(dataset, known={"H": -10.5})

    assert fit.isolated_atoms == ("H",)
    assert fit.energies["H"] == pytest.approx(-10.5)
    mean = np.mean([-300.0 - 0.2 * k for k in range(4)])
    assert 2 * fit.energies["C"] + fit.energies["O"] == pytest.approx(mean + 6 * 10.5)
    assert fit.energies["C"] == pytest.approx(fit.energies["O"])
    assert fit.undetermined == ("C", "O")
    assert fit.warning is not None and "H from free atoms" in fit.warning


def test_full_rank_compositions_carry_no_warning() -> None:
    fit = reference_energy_fit(synthetic([(8, 0), (4, 4), (2, 6)]))
    assert fit.warning is None and fit.undetermined == ()


def test_compositions_span_the_elements_only_with_full_rank() -> None:
    assert compositions_span_elements(synthetic([(8, 0), (4, 4)]))
    assert not compositions_span_elements(synthetic([(4, 4), (2, 2)]))  # one direction
    ethanol, water = _molecule("C2H6O", -310.0), _molecule("H4O2", -280.0)
    assert not compositions_span_elements(Dataset.from_atoms([ethanol, water]))  # 2 of 3
    methane = _molecule("CH4", -100.0)
    assert compositions_span_elements(Dataset.from_atoms([ethanol, water, methane]))


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


def test_fewer_structures_than_elements_leave_the_elements_undetermined() -> None:
    # One structure of two elements: only their sum is fixed (the fit's SVD must still see
    # the direction the data cannot, with fewer rows than columns).
    fit = reference_energy_fit(synthetic([(2, 2)]))

    total = 2 * E_CU + 2 * E_PT
    assert fit.undetermined == ("Cu", "Pt")
    assert fit.energies == pytest.approx({"Cu": total / 4, "Pt": total / 4})
