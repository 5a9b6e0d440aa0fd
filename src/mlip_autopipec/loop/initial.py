"""Generation 0's structures when no labelled data is given: the starting structures, rattled
and strained, for the oracle to label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from mlip_autopipec.config.loop import InitialStructures


def initial_structures(structures: Sequence[Atoms], settings: InitialStructures) -> list[Atoms]:
    """Each starting structure and ``copies_per_structure`` copies of it, every atom displaced
    by a normal deviate of ``rattle_stdev`` Å and a periodic cell strained by up to
    ``max_strain`` per component; named ``<name>/initial_<k>`` (k = 0 is the original)."""
    rng = np.random.default_rng(settings.seed)
    result: list[Atoms] = []
    for index, original in enumerate(structures):
        name = str(original.info.get("name", f"start_{index}"))
        for copy in range(settings.copies_per_structure + 1):
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
