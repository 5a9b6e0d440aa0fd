"""Per-element reference energies: the part of a total energy that only counts atoms."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mlip_autopipec.domain_models.dataset import Dataset


def composition_matrix(dataset: Dataset, elements: tuple[str, ...]) -> np.ndarray:
    """Number of atoms of each element (columns, in ``elements`` order) in each structure (rows)."""
    column = {element: k for k, element in enumerate(elements)}
    counts = np.zeros((len(dataset), len(elements)))
    for row, structure in enumerate(dataset):
        for symbol in structure.atoms.get_chemical_symbols():
            counts[row, column[symbol]] += 1
    return counts


def fit_reference_energies(dataset: Dataset) -> dict[str, float]:
    """Least-squares energies per atom of each element (eV) that best explain the total energies.

    Subtracting them leaves energies near zero, which pacemaker fits well (it warns below
    -20 eV/atom); where compositions are linearly dependent, the minimum-norm solution is taken.
    """
    elements = dataset.elements
    counts = composition_matrix(dataset, elements)
    energies = np.array([structure.energy for structure in dataset])
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {element: float(value) for element, value in zip(elements, solution, strict=True)}


def resolve_reference_energies(
    setting: str | Mapping[str, float], dataset: Dataset
) -> dict[str, float]:
    """The reference energies to use: given per element, or fitted when ``setting`` is 'auto'."""
    if isinstance(setting, str):
        if setting != "auto":
            raise ValueError(f"reference_energies must be 'auto' or a mapping, got {setting!r}")
        return fit_reference_energies(dataset)
    missing = sorted(set(dataset.elements) - set(setting))
    if missing:
        raise ValueError(
            f"reference_energies has no value for {missing} (elements of the dataset: "
            f"{list(dataset.elements)})"
        )
    return {element: float(setting[element]) for element in dataset.elements}
