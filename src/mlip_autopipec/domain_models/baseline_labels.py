"""The baseline's energies and forces of training structures (delta learning), searched only
where the baseline reaches: the structures' neighbour summaries tell where it does not."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase import Atoms

from mlip_autopipec.domain_models.baseline import PairPotential
from mlip_autopipec.domain_models.neighbours import NeighbourTable, StructureNeighbours


def reaches(potential: PairPotential, neighbours: StructureNeighbours, radius: float) -> bool:
    """Whether any pair of a structure lies within the potential's reach, judged from its
    neighbour summary found within ``radius`` (Å); True when the summary cannot tell."""
    if potential.cutoff > radius:
        return True
    return any(
        shortest < potential.pair_reach(z_first, z_second)
        for (z_first, z_second), shortest in zip(
            neighbours.pair_numbers.tolist(), neighbours.pair_shortest.tolist(), strict=True
        )
    )


def baseline_labels(
    potential: PairPotential, structures: Iterable[Atoms], neighbours: NeighbourTable | None
) -> list[tuple[float, np.ndarray]]:
    """The potential's energy (eV) and forces (eV/Å) of each structure.

    A structure whose summary in ``neighbours`` shows no pair within the potential's reach gets
    zeros without a search (ZBL with cutoffs from the data: every structure, since each pair's
    outer cutoff lies at or below its shortest distance); the others are evaluated.
    """
    labels = []
    for atoms in structures:
        if neighbours is not None and not reaches(
            potential, neighbours.of(atoms), neighbours.cutoff
        ):
            labels.append((0.0, np.zeros((len(atoms), 3))))
        else:
            labels.append(potential.energy_and_forces(atoms))
    return labels
