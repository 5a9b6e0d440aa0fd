"""Checks of one labelled structure before it is trained on, with messages that name it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
from ase import Atoms

from mlip_autopipec.errors import DatasetValidationError

if TYPE_CHECKING:
    from mlip_autopipec.domain_models.dataset import LabelledStructure
    from mlip_autopipec.domain_models.neighbours import NeighbourTable

#: Two atoms closer than this (Å) mean a broken structure, not a physical configuration.
MIN_INTERATOMIC_DISTANCE = 0.1
#: A periodic cell spanning less (Å^3; Å^2 or Å for 2 or 1 periodic directions) is degenerate.
MIN_CELL_MEASURE = 1e-6


def validate_structure(
    structure: LabelledStructure,
    *,
    index: int,
    source: str | Path | None = None,
    neighbours: NeighbourTable | None = None,
    search: bool = True,
) -> None:
    """Raise DatasetValidationError if the structure cannot be trained on.

    ``neighbours``: the table of neighbour searches that the structure's later consumers read
    (at the trainer's cutoff); the check of close atoms takes the shortest distance from it
    instead of a search of its own, so that each structure is searched once. Without
    ``search``, every check but that of close atoms.
    """

    def fail(reason: str) -> DatasetValidationError:
        return DatasetValidationError(reason, index=index, name=structure.name, source=source)

    atoms = structure.atoms
    n_atoms = len(atoms)
    if n_atoms == 0:
        raise fail("has no atoms")
    if not np.all(np.isfinite(atoms.positions)):
        raise fail("positions contain NaN or inf")
    if not np.isfinite(structure.energy):
        raise fail(f"energy is not finite ({structure.energy})")
    forces = structure.forces
    if forces.shape != (n_atoms, 3):
        raise fail(f"forces have shape {forces.shape}, expected ({n_atoms}, 3) for {n_atoms} atoms")
    if not np.all(np.isfinite(forces)):
        bad_atoms = np.unique(np.nonzero(~np.isfinite(forces))[0])
        raise fail(f"forces contain NaN or inf (atoms {bad_atoms[:10].tolist()})")
    for label, weight in (
        ("energy_weight", structure.energy_weight),
        ("force_weight", structure.force_weight),
    ):
        if weight is not None and not (np.isfinite(weight) and weight >= 0):
            raise fail(f"{label} must be a finite number >= 0, got {weight}")
    _check_cell(atoms, fail)
    _check_images(atoms, fail)
    if search:
        known = neighbours.of(atoms).shortest if _tells_close_atoms(neighbours) else None
        _check_close_pairs(atoms, fail, known)


def validate_structures(
    structures: Sequence[LabelledStructure],
    *,
    source: str | Path | None = None,
    neighbours: NeighbourTable | None = None,
) -> None:
    """Raise DatasetValidationError for a structure that cannot be trained on.

    With ``neighbours``, the checks that need no neighbour search run first; then the
    structures are searched together into the table (on several threads), and the check of
    close atoms reads it. A structure failing a check of the first kind is then named before
    one with close atoms, whatever their order.
    """
    for index, structure in enumerate(structures):
        validate_structure(structure, index=index, source=source, search=neighbours is None)
    if neighbours is None:
        return
    summaries = neighbours.cover(structure.atoms for structure in structures)
    for index, (structure, summary) in enumerate(zip(structures, summaries, strict=True)):

        def fail(reason: str, s: LabelledStructure = structure, i: int = index) -> Exception:
            return DatasetValidationError(reason, index=i, name=s.name, source=source)

        known = summary.shortest if _tells_close_atoms(neighbours) else None
        _check_close_pairs(structure.atoms, fail, known)


def _check_cell(atoms: Atoms, fail: Any) -> None:
    periodic = np.asarray(atoms.pbc, dtype=bool)
    if not periodic.any():
        return
    vectors = np.asarray(atoms.cell)[periodic]
    # The Gram determinant is the squared volume (area, length) spanned by the periodic vectors.
    measure = float(np.sqrt(max(np.linalg.det(vectors @ vectors.T), 0.0)))
    if measure < MIN_CELL_MEASURE:
        directions = "".join(axis for axis, p in zip("xyz", periodic, strict=True) if p)
        raise fail(
            f"cell has zero volume in its periodic directions ({directions}); "
            f"cell = {np.asarray(atoms.cell).tolist()}"
        )


def _check_images(atoms: Atoms, fail: Any) -> None:
    """Every atom farther than MIN_INTERATOMIC_DISTANCE from its own periodic images."""
    periodic = np.asarray(atoms.pbc, dtype=bool)
    if periodic.any() and not _heights_exclude_close_images(atoms):
        # Checked first, and cheaply: ASE's neighbor_list visits every cell image within 3 Å,
        # which takes minutes on a cell of a few hundredths of an Å.
        from ase.geometry import minkowski_reduce

        reduced, _ = minkowski_reduce(np.asarray(atoms.cell), pbc=periodic)
        image = float(np.linalg.norm(reduced[periodic], axis=1).min())
        if image < MIN_INTERATOMIC_DISTANCE:
            raise fail(
                f"every atom is {image:.4f} Å from its own periodic image "
                f"(closer than {MIN_INTERATOMIC_DISTANCE} Å)"
            )


def _tells_close_atoms(neighbours: NeighbourTable | None) -> TypeGuard[NeighbourTable]:
    """Whether the table's searches reach MIN_INTERATOMIC_DISTANCE, so that a structure's
    shortest distance from them decides the check of close atoms."""
    return neighbours is not None and neighbours.cutoff >= MIN_INTERATOMIC_DISTANCE


def _check_close_pairs(atoms: Atoms, fail: Any, known_shortest: float | None) -> None:
    """No two atoms (or an atom and another's image) closer than MIN_INTERATOMIC_DISTANCE.

    ``known_shortest``: the structure's shortest distance (Å) from its one search at the
    trainer's cutoff, which its later consumers read too; only a structure that fails is
    searched again, to name the close atoms."""
    periodic = np.asarray(atoms.pbc, dtype=bool)
    if len(atoms) < 2 and not periodic.any():
        return
    if known_shortest is not None and known_shortest >= MIN_INTERATOMIC_DISTANCE:
        return
    if _search_box_volume(atoms) <= _COMPILED_SEARCH_MAX_VOLUME:
        # vesin (compiled) at a radius whose cell grid stays small, then the close pairs.
        from mlip_autopipec.domain_models.neighbours import neighbour_pairs

        first, second, distances, _ = neighbour_pairs(atoms, _COMPILED_SEARCH_RADIUS)
        close = distances < MIN_INTERATOMIC_DISTANCE
        first, second, distances = first[close], second[close], distances[close]
    elif _no_pair_can_be_close(atoms):
        return
    else:
        from ase.neighborlist import neighbor_list

        first, second, distances = neighbor_list("ijd", atoms, MIN_INTERATOMIC_DISTANCE)
    if len(distances):
        k = int(np.argmin(distances))
        raise fail(
            f"atoms {int(first[k])} and {int(second[k])} are {distances[k]:.4f} Å apart "
            f"(closer than {MIN_INTERATOMIC_DISTANCE} Å)"
        )


#: Å; radius of the compiled search for close atoms: a grid of 0.1 Å cells would be slow.
_COMPILED_SEARCH_RADIUS = 1.0
#: Å^3; a larger box (vacuum around a few atoms) would make that grid large: ASE searches then.
_COMPILED_SEARCH_MAX_VOLUME = 1e6


def _heights_exclude_close_images(atoms: Atoms) -> bool:
    """True if a fully periodic cell's heights (distances between opposite faces) are all at
    least MIN_INTERATOMIC_DISTANCE: every lattice vector is then at least that long."""
    if not np.asarray(atoms.pbc, dtype=bool).all():
        return False
    cell = np.asarray(atoms.cell)
    if abs(np.linalg.det(cell)) < MIN_CELL_MEASURE:
        return False
    heights = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
    return bool(heights.min() >= MIN_INTERATOMIC_DISTANCE)


def _search_box_volume(atoms: Atoms) -> float:
    """Å^3 of the box a cell-list search covers: the cell along periodic directions, the
    extent of the atoms (at least 1 Å) along the others."""
    periodic = np.asarray(atoms.pbc, dtype=bool)
    extent = np.ptp(atoms.positions, axis=0) if len(atoms) else np.zeros(3)
    cell = np.asarray(atoms.cell)
    lengths = np.where(periodic, np.linalg.norm(cell, axis=1), np.maximum(extent, 1.0))
    return float(np.prod(lengths))


#: Above this many atoms the all-pairs screen of _no_pair_can_be_close would need much memory.
_SCREEN_MAX_ATOMS = 1000


def _no_pair_can_be_close(atoms: Atoms) -> bool:
    """A fast, conservative screen: True only if no two atoms (or images) are too close.

    All pairs at once: fractional differences wrapped into [-1/2, 1/2] are the nearest images in
    fractional space, so the smallest singular value of the cell times their length bounds every
    Cartesian image distance from below. False means "maybe": the exact search decides.
    """
    n_atoms = len(atoms)
    periodic = np.asarray(atoms.pbc, dtype=bool)
    if n_atoms > _SCREEN_MAX_ATOMS or (periodic.any() and not periodic.all()):
        return False
    first, second = np.triu_indices(n_atoms, k=1)
    if not periodic.any():
        gaps = atoms.positions[first] - atoms.positions[second]
        return bool(np.all(np.einsum("ij,ij->i", gaps, gaps) >= MIN_INTERATOMIC_DISTANCE**2))
    cell = np.asarray(atoms.cell)
    fractional = atoms.get_scaled_positions(wrap=False)
    differences = fractional[first] - fractional[second]
    differences -= np.round(differences)
    smallest_stretch = float(np.linalg.svd(cell, compute_uv=False).min())
    lengths = np.sqrt(np.einsum("ij,ij->i", differences, differences))
    return bool(np.all(smallest_stretch * lengths >= MIN_INTERATOMIC_DISTANCE))
