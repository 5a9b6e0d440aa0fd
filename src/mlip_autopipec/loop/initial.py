"""Generation 0's structures when no labelled data is given: the starting structures, rattled
and strained, for the oracle to label."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from mlip_autopipec.config.loop import InitialStructures

log = logging.getLogger(__name__)


def copies_for_active_set(
    structures: Sequence[Atoms], copies: int, functions_per_element: int | None
) -> int:
    """``copies`` per starting structure, or more: enough that every element has at least
    ``functions_per_element`` atoms in generation 0. pace_activeset needs as many atomic
    environments of an element as its basis has functions, or generation 0 has no active set
    and no extrapolation grade to explore with (two ethanol carbons in 9 structures are 18
    environments, too few for 20 functions)."""
    if not functions_per_element:
        return copies
    counts = Counter(symbol for atoms in structures for symbol in atoms.get_chemical_symbols())
    needed = max((math.ceil(functions_per_element / n) - 1 for n in counts.values()), default=0)
    if needed > copies:
        log.info(
            "generation 0: %d copies of each starting structure instead of %d, so that every "
            "element has %d atomic environments for the active set (atoms per structure set: %s)",
            needed,
            copies,
            functions_per_element,
            ", ".join(f"{element} {n}" for element, n in sorted(counts.items())),
        )
    return max(copies, needed)


def initial_structures(
    structures: Sequence[Atoms], settings: InitialStructures, copies: int | None = None
) -> list[Atoms]:
    """Each starting structure and ``copies`` (default ``copies_per_structure``) copies of it,
    every atom displaced by a normal deviate of ``rattle_stdev`` Å and a periodic cell strained
    by up to ``max_strain`` per component; named ``<name>/initial_<k>`` (k = 0 is the
    original)."""
    rng = np.random.default_rng(settings.seed)
    result: list[Atoms] = []
    for index, original in enumerate(structures):
        name = str(original.info.get("name", f"start_{index}"))
        for copy in range((settings.copies_per_structure if copies is None else copies) + 1):
            atoms = Atoms(
                original.symbols, positions=original.positions, cell=original.cell, pbc=original.pbc
            )
            if copy:
                if atoms.pbc.all() and settings.max_strain > 0:
                    strain = rng.uniform(-settings.max_strain, settings.max_strain, (3, 3))
                    strain = np.eye(3) + (strain + strain.T) / 2
                    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
                atoms.positions += rng.normal(0.0, settings.rattle_stdev, atoms.positions.shape)
            atoms.info["name"] = f"{name}/initial_{copy}"
            result.append(atoms)
    return result
