"""Atoms with no neighbour within the cutoff: free-atom references, or structures a fit cannot use.

An ACE fit (pacemaker) silently drops every structure holding an atom with no neighbour
within the cutoff. Such structures are decided on before the fit instead: a single free atom
(one atom, no periodic image within the cutoff) is the usual DFT reference of its element's
energy; any other one is an error naming it, or, if asked, dropped with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.neighbours import NeighbourTable, neighbour_pairs
from mlip_autopipec.errors import DatasetValidationError

log = logging.getLogger(__name__)

#: eV; free-atom energies of one element that differ by more are reported.
FREE_ATOM_SPREAD_EV = 0.01


@dataclass(frozen=True)
class AccountedDataset:
    """Every structure of a dataset, sorted: fitted, free-atom reference, or dropped.

    ``free_atoms`` and ``dropped`` hold positions in the original dataset;
    ``free_atom_energies`` the energy (eV) of each element's free atom; ``neighbours`` the
    neighbour search of every structure, for the later consumers (None: not kept).
    """

    fit: Dataset
    free_atoms: tuple[int, ...] = ()
    free_atom_energies: dict[str, float] = field(default_factory=dict)
    dropped: tuple[int, ...] = ()
    neighbours: NeighbourTable | None = None


def atoms_without_neighbours(atoms: Atoms, cutoff: float) -> np.ndarray:
    """Indices of the atoms with no other atom (nor periodic image) within ``cutoff`` (Å)."""
    centres, *_ = neighbour_pairs(atoms, cutoff)
    return np.flatnonzero(np.bincount(centres, minlength=len(atoms)) == 0)


def account_for_structures(
    dataset: Dataset, cutoff: float, *, drop: bool, neighbours: NeighbourTable | None = None
) -> AccountedDataset:
    """Sort the structures of ``dataset`` into fitted ones, free atoms and (with ``drop``)
    dropped ones; without ``drop`` an unusable structure raises DatasetValidationError.

    The neighbours of every structure within ``cutoff`` are searched once, into
    ``neighbours`` (a table at that cutoff, which may hold some already, as may the dataset's
    own table) or a new table;
    the result carries it for the later consumers.
    """
    if neighbours is None or neighbours.cutoff != cutoff:
        neighbours = NeighbourTable(cutoff)
    neighbours.update(dataset.neighbours)  # those searched when the data were checked
    summaries = neighbours.cover((structure.atoms for structure in dataset), total=len(dataset))
    keep: list[int] = []
    free: list[int] = []
    dropped: list[int] = []
    for index, (structure, summary) in enumerate(zip(dataset, summaries, strict=True)):
        lonely = summary.lonely
        if not len(lonely):
            keep.append(index)
        elif structure.n_atoms == 1:
            free.append(index)
        elif drop:
            dropped.append(index)
        else:
            atom = int(lonely[0])
            raise DatasetValidationError(
                f"atom {atom} ({structure.atoms.get_chemical_symbols()[atom]}) has no neighbour "
                f"within the cutoff of {cutoff} Å ({len(lonely)} such atoms), so the fit could "
                "not use this structure: remove it, or set "
                "trainer.structures_without_neighbours: drop to leave such structures out",
                index=index,
                name=structure.name,
                source=dataset.source,
            )
    if dropped:
        log.warning(
            "%d structures left out of the fit (an atom without neighbour within %g Å): %s",
            len(dropped),
            cutoff,
            ", ".join(f"{i} '{dataset[i].name}'" for i in dropped),
        )
    if not keep:
        raise DatasetValidationError(
            f"no structure has every atom within {cutoff} Å of another: nothing to fit",
            source=dataset.source,
        )
    fit = dataset.subset(keep)
    energies = _free_atom_energies(dataset, free)
    for element in sorted(set(energies) - set(fit.elements)):
        log.warning(
            "only a free atom holds %s: no structure to fit it, so the potential does not cover %s",
            element,
            element,
        )
    return AccountedDataset(fit, tuple(free), energies, tuple(dropped), neighbours)


def _free_atom_energies(dataset: Dataset, indices: list[int]) -> dict[str, float]:
    """Each element's free-atom energy (eV): the lowest if several are given."""
    by_element: dict[str, list[int]] = {}
    for index in indices:
        by_element.setdefault(dataset[index].atoms.get_chemical_symbols()[0], []).append(index)
    energies = {}
    for element, members in sorted(by_element.items()):
        values = [dataset[i].energy for i in members]
        if max(values) - min(values) > FREE_ATOM_SPREAD_EV:
            log.warning(
                "the %d free %s atoms (structures %s) differ by %.3g eV; the lowest is taken",
                len(members),
                element,
                members,
                max(values) - min(values),
            )
        energies[element] = min(values)
        log.info(
            "structure %s '%s' is a free %s atom (%.6g eV): a reference energy, not fitted",
            members[0],
            dataset[members[0]].name,
            element,
            energies[element],
        )
    return energies
