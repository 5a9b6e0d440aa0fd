"""The physical floor of the explorer: how close two atoms of each element pair may come."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from mlip_autopipec.config.explorer import ExplorerConfig
from mlip_autopipec.domain_models.neighbours import NeighbourTable, neighbour_pairs

#: Å, radius within which the reference's shortest distances are searched.
SEARCH_RADIUS_A = 6.0

Pair = tuple[str, str]


def pair(a: str, b: str) -> Pair:
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class ContactFloors:
    """Å, the floor of each element pair (sorted symbols) and where it comes from."""

    floors: dict[Pair, float]
    origins: dict[Pair, str]

    def closest_violation(self, atoms: Atoms) -> tuple[Pair, float, float] | None:
        """The pair furthest below its floor: (pair, distance Å, floor Å); None if none is."""
        if len(atoms) < 2 or not self.floors:
            return None
        first, second, distances, _ = neighbour_pairs(atoms, max(self.floors.values()))
        if not len(distances):
            return None
        symbols = atoms.get_chemical_symbols()
        worst: tuple[Pair, float, float] | None = None
        for i, j, distance in zip(first.tolist(), second.tolist(), distances.tolist(), strict=True):
            key = pair(symbols[i], symbols[j])
            floor = self.floors.get(key)
            if floor is None or distance >= floor:
                continue
            if worst is None or distance / floor < worst[1] / worst[2]:
                worst = (key, distance, floor)
        return worst

    def describe(self, key: Pair) -> str:
        return f"{'-'.join(key)} floor {self.floors[key]:.3f} Å ({self.origins[key]})"


def contact_floors(
    elements: Sequence[str],
    config: ExplorerConfig,
    reference: Mapping[Pair, float],
    reference_name: str,
) -> ContactFloors:
    """The floor of every pair of ``elements``: ``min_distance_A`` if set, else
    ``min_distance_factor`` times the pair's shortest distance in ``reference`` (Å), else
    times the sum of the covalent radii."""
    floors: dict[Pair, float] = {}
    origins: dict[Pair, str] = {}
    for index, a in enumerate(elements):
        for b in elements[index:]:
            key = pair(a, b)
            if config.min_distance_A is not None:
                floors[key], origins[key] = config.min_distance_A, "explorer.min_distance_A"
                continue
            factor = config.min_distance_factor
            shortest = reference.get(key)
            if shortest is not None:
                floors[key] = factor * shortest
                origins[key] = f"{factor:g} x {shortest:.3f} Å, the shortest in {reference_name}"
            else:
                covalent = float(
                    covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]]
                )
                floors[key] = factor * covalent
                origins[key] = f"{factor:g} x {covalent:.3f} Å, the covalent radii's sum"
    return ContactFloors(floors, origins)


def shortest_pair_distances(structures: Sequence[Atoms]) -> dict[Pair, float]:
    """Å, the shortest distance between atoms of each element pair in ``structures`` (periodic
    images count; pairs never within SEARCH_RADIUS_A are absent): the floors' reference when
    the caller gives none."""
    return NeighbourTable(SEARCH_RADIUS_A).shortest_distances(structures)
