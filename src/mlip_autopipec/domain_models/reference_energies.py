"""Per-element reference energies: the part of a total energy that only counts atoms."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mlip_autopipec.domain_models.dataset import Dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceEnergies:
    """Reference energies (eV/atom per element) and what the data could not determine.

    ``undetermined`` lists the elements whose individual values the compositions in the data
    do not fix (a rank-deficient composition matrix); ``warning`` then says what the values
    mean. ``isolated_atoms`` lists the elements referenced to free atoms of the data.
    """

    energies: dict[str, float]
    undetermined: tuple[str, ...] = ()
    isolated_atoms: tuple[str, ...] = ()
    warning: str | None = None


def composition_matrix(dataset: Dataset, elements: tuple[str, ...]) -> np.ndarray:
    """Number of atoms of each element (columns, in ``elements`` order) in each structure (rows)."""
    column = {element: k for k, element in enumerate(elements)}
    counts = np.zeros((len(dataset), len(elements)))
    for row, structure in enumerate(dataset):
        for symbol in structure.atoms.get_chemical_symbols():
            counts[row, column[symbol]] += 1
    return counts


def compositions_span_elements(dataset: Dataset) -> bool:
    """Whether the compositions vary independently in every element (composition matrix of
    full column rank): what per-element reference energies, and a convex hull of the
    formation energies over the compositions, need. Molecules of fixed compositions, fewer
    than their elements, do not."""
    counts = composition_matrix(dataset, dataset.elements)
    return int(np.linalg.matrix_rank(counts)) == len(dataset.elements)


def fit_reference_energies(dataset: Dataset) -> dict[str, float]:
    """Least-squares energies per atom of each element (eV) that best explain the total energies.

    Subtracting them leaves energies near zero, which pacemaker fits well (it warns below
    -20 eV/atom). See :func:`reference_energy_fit` for compositions that do not determine them.
    """
    return reference_energy_fit(dataset).energies


def reference_energy_fit(
    dataset: Dataset, known: Mapping[str, float] | None = None
) -> ReferenceEnergies:
    """Reference energies by least squares, with what the data cannot determine made explicit.

    ``known`` (eV per element, e.g. the energies of free atoms in the data) fixes those
    elements; the others are fitted to what the known ones leave of the total energies. When
    the compositions determine them (full column rank), this is the plain least-squares fit.
    Otherwise (e.g. every structure has the same composition) only some combinations are
    determined, and the undetermined elements are fitted with the least spread between them
    (one shared per-atom shift when nothing else is determined), which keeps every determined
    combination. The result then carries a warning: total energies are comparable only at the
    trained compositions.
    """
    elements = dataset.elements
    known = {element: float(value) for element, value in (known or {}).items()}
    counts = composition_matrix(dataset, elements)
    energies = np.array([structure.energy for structure in dataset])
    rank = int(np.linalg.matrix_rank(counts))
    fixed = np.array([element in known for element in elements])
    values = np.array([known.get(element, 0.0) for element in elements])
    isolated = tuple(element for element in elements if element in known)
    free = ~fixed
    if not free.any():
        return ReferenceEnergies(dict(zip(elements, values.tolist(), strict=True)), (), isolated)

    rows = counts[:, free].sum(axis=1) > 0
    sub_counts = counts[rows][:, free]
    residual = energies[rows] - counts[rows][:, fixed] @ values[fixed]
    particular, *_ = np.linalg.lstsq(sub_counts, residual, rcond=None)
    # Null space of the free part: directions the data cannot see.
    # All of V, without the structures x structures U of a full SVD (fewer structures than
    # elements: U is small, and the full SVD gives the rows of V the reduced one leaves out).
    n_structures, n_free = sub_counts.shape
    _, singular, vt = np.linalg.svd(sub_counts, full_matrices=n_structures < n_free)
    sub_rank = int((singular > singular.max() * 1e-10).sum()) if singular.size else 0
    null = vt[sub_rank:].T
    if null.shape[1]:
        # Of all equally good solutions, the one with the least spread between the elements.
        centre = np.eye(free.sum()) - 1.0 / free.sum()
        step, *_ = np.linalg.lstsq(centre @ null, -centre @ particular, rcond=None)
        particular = particular + null @ step
    values[free] = particular
    result = dict(zip(elements, values.tolist(), strict=True))
    if not null.shape[1]:
        return ReferenceEnergies(result, (), isolated)
    undetermined_mask = np.zeros(len(elements), dtype=bool)
    undetermined_mask[np.flatnonzero(free)] = np.abs(null).max(axis=1) > 1e-8
    undetermined = tuple(e for e, u in zip(elements, undetermined_mask, strict=True) if u)
    warning = _rank_warning(rank, elements, undetermined, isolated, result)
    return ReferenceEnergies(result, undetermined, isolated, warning)


def _rank_warning(
    rank: int,
    elements: tuple[str, ...],
    undetermined: tuple[str, ...],
    isolated: tuple[str, ...],
    energies: Mapping[str, float],
) -> str:
    values = ", ".join(f"{element} {energies[element]:.4f}" for element in undetermined)
    from_atoms = f" ({', '.join(isolated)} from free atoms in the data)" if isolated else ""
    return (
        f"reference_energies 'auto': the compositions in the data do not determine the "
        f"per-atom energies of {', '.join(undetermined)} (composition matrix of rank {rank} for "
        f"{len(elements)} elements, e.g. every structure has the same composition). Only the "
        f"combinations the data fix were fitted{from_atoms}, with the least spread between "
        f"the undetermined elements ({values} eV). Total energies are therefore comparable "
        "only between structures of the trained compositions; give trainer.reference_energies "
        "(e.g. free-atom energies of your DFT setup) for a potential that transfers to other "
        "compositions."
    )


def resolve_reference_energies(
    setting: str | Mapping[str, float],
    dataset: Dataset,
    known: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The reference energies to use: given per element, or fitted when ``setting`` is 'auto'
    (``known``: free-atom energies that fix their elements)."""
    return reference_energies_for(setting, dataset, known).energies


def reference_energies_for(
    setting: str | Mapping[str, float],
    dataset: Dataset,
    known: Mapping[str, float] | None = None,
) -> ReferenceEnergies:
    """As :func:`resolve_reference_energies`, with the fit's warning when 'auto' is
    underdetermined (also logged)."""
    if isinstance(setting, str):
        if setting != "auto":
            raise ValueError(f"reference_energies must be 'auto' or a mapping, got {setting!r}")
        fit = reference_energy_fit(dataset, known)
        if fit.warning is not None:
            log.warning("%s", fit.warning)
        return fit
    missing = sorted(set(dataset.elements) - set(setting))
    if missing:
        raise ValueError(
            f"reference_energies has no value for {missing} (elements of the dataset: "
            f"{list(dataset.elements)})"
        )
    return ReferenceEnergies({element: float(setting[element]) for element in dataset.elements})
