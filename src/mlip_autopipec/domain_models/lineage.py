"""Generations of a potential: what a fit inherited from its parent, and data that accumulates."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.domain_models.dataset import Dataset, LabelledStructure

#: Å: two structures whose cells and positions agree to this are the same structure.
DUPLICATE_TOLERANCE = 1e-5


class Lineage(BaseModel):
    """Where a potential sits in a chain of generations (``potential.json``: ``lineage``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generation: int = Field(description="0: fitted without a parent")
    parent: str = Field(description="run directory of the parent potential (absolute)")
    fitted_from: Literal["fresh", "upfit", "basis growth"] = Field(
        description=(
            "upfit: from the parent's coefficients, same basis; basis growth: the parent's "
            "basis extended (pacemaker's initial_potential); fresh: random start"
        )
    )
    reason: str = Field(description="why this start was chosen")
    basis_functions: int = Field(description="functions per element of this fit")
    parent_basis_functions: int | None = Field(None, description="the parent's")
    n_inherited: int = Field(description="training structures taken over from the parent")
    n_added: int = Field(description="new structures added (train and test)")
    n_duplicates: int = Field(description="given structures already present, counted once")
    n_test_inherited: int = Field(description="the parent's test structures, kept as test")
    n_test_added: int = Field(description="new structures put into the test set")
    parent_data_sha256: str | None = Field(
        description=(
            "hash of the parent's data files (training_set.extxyz, test_set.extxyz) as read "
            "when this generation was made, never copied from the parent's record: `history` "
            "compares it with the parent it finds"
        )
    )
    added_data_sha256: str = Field(description="hash of the new structures given")
    max_gamma_added: float | None = Field(
        None,
        description=(
            "highest extrapolation grade of the new structures under the parent potential "
            "(None: the parent has no active set)"
        ),
    )
    inherited_energy_scale: str = Field(
        description="which reference energies and baseline came from the parent"
    )

    def describe(self) -> list[str]:
        """Lines for the summary and the report: how this generation came about."""
        lines = [
            f"generation {self.generation} (parent {self.parent}): {self.fitted_from}, "
            f"{self.reason}",
            f"data: {self.n_inherited} training structures inherited, {self.n_added} added "
            f"({self.n_test_added} of them to the test set), {self.n_duplicates} duplicate(s) "
            f"counted once; the test set holds all {self.n_test_inherited} test structures of "
            "the parent (no test structure is ever trained on)",
            f"energy scale: {self.inherited_energy_scale}",
        ]
        if self.max_gamma_added is not None:
            lines.append(
                f"max gamma of the new structures under the parent: {self.max_gamma_added:.3g}"
            )
        return lines


@dataclass(frozen=True)
class Accumulated:
    """Training and test structures of the next generation, and how they were counted."""

    training: Dataset
    test: Dataset | None
    n_inherited: int
    n_test_inherited: int
    n_added_train: int
    n_added_test: int
    n_duplicates: int
    duplicates: tuple[str, ...]  # names of the new structures counted once


def same_structure(
    first: LabelledStructure, second: LabelledStructure, tolerance: float = DUPLICATE_TOLERANCE
) -> bool:
    """Same atomic numbers (in order), periodicity, cell and positions within ``tolerance`` Å."""
    a, b = first.atoms, second.atoms
    return (
        len(a) == len(b)
        and np.array_equal(a.numbers, b.numbers)
        and np.array_equal(a.pbc, b.pbc)
        and _within(a.cell.array, b.cell.array, tolerance)
        and _within(a.positions, b.positions, tolerance)
    )


def _within(first: np.ndarray, second: np.ndarray, tolerance: float) -> bool:
    """Every element of ``first`` within ``tolerance`` of ``second`` (np.allclose with rtol 0,
    without its generality, which costs more than the comparison)."""
    return bool(np.all(np.abs(first - second) <= tolerance))


#: Å; the grid of the first atom's position that buckets the structures (far above tolerance).
_BUCKET_GRID = 0.01


class StructureIndex:
    """Finds a structure among those added so far, to ``tolerance`` Å.

    Structures are bucketed by their numbers, periodicity and the first atom's position on a
    grid of ``_BUCKET_GRID`` Å; a structure equal within tolerance lies in the same or an
    adjacent cell of the grid, so a search compares with a few structures, not all of them,
    and only with those whose first atom lies within tolerance.
    """

    def __init__(self, tolerance: float = DUPLICATE_TOLERANCE) -> None:
        if tolerance >= _BUCKET_GRID:
            raise ValueError(f"tolerance {tolerance} Å not below the grid of {_BUCKET_GRID} Å")
        self.tolerance = tolerance
        self._buckets: dict[
            tuple[bytes, int, int, int], list[tuple[tuple[float, ...], LabelledStructure]]
        ] = defaultdict(list)

    @staticmethod
    def _key(structure: LabelledStructure) -> tuple[bytes, tuple[float, ...]]:
        """The numbers and periodicity (bytes), and the first atom's position (Å)."""
        atoms = structure.atoms
        kind = np.asarray(atoms.numbers, dtype=np.int64).tobytes()
        kind += np.asarray(atoms.pbc, dtype=bool).tobytes()
        return kind, tuple(atoms.positions[0].tolist())

    def add(self, structure: LabelledStructure) -> None:
        self._add(structure, *self._key(structure))

    def _add(self, structure: LabelledStructure, kind: bytes, position: tuple[float, ...]) -> None:
        x, y, z = (math.floor(value / _BUCKET_GRID) for value in position)
        self._buckets[(kind, x, y, z)].append((position, structure))

    def find(self, structure: LabelledStructure) -> LabelledStructure | None:
        """The structure already added that equals ``structure``, or None."""
        return self._find(structure, *self._key(structure))

    def _find(
        self, structure: LabelledStructure, kind: bytes, position: tuple[float, ...]
    ) -> LabelledStructure | None:
        x, y, z = (math.floor(value / _BUCKET_GRID) for value in position)
        for dx, dy, dz in _ADJACENT:
            for known_position, known in self._buckets.get((kind, x + dx, y + dy, z + dz), ()):
                near = all(
                    abs(a - b) <= self.tolerance
                    for a, b in zip(known_position, position, strict=True)
                )
                if near and same_structure(known, structure, self.tolerance):
                    return known
        return None

    def find_or_add(self, structure: LabelledStructure) -> LabelledStructure | None:
        """The structure already added that equals ``structure``; else None, and
        ``structure`` is added."""
        key = self._key(structure)
        known = self._find(structure, *key)
        if known is None:
            self._add(structure, *key)
        return known


_ADJACENT = [(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)]


def accumulate(
    previous_training: Sequence[LabelledStructure],
    previous_test: Sequence[LabelledStructure],
    new: Dataset,
    *,
    test_size: float,
    seed: int,
    tolerance: float = DUPLICATE_TOLERANCE,
) -> Accumulated:
    """The parent's training structures plus the new ones, and the parent's test structures plus
    a random ``test_size`` share of the new ones (seeded).

    A test structure stays a test structure: errors stay comparable across generations, and no
    generation is trained on what an earlier one was tested on. A new structure equal to one
    already present (:func:`same_structure`), or to an earlier new one, is counted once.
    """
    index = StructureIndex(tolerance)
    for structure in (*previous_training, *previous_test):
        index.add(structure)
    fresh: list[LabelledStructure] = []
    duplicates: list[str] = []
    for structure in new:
        if index.find_or_add(structure) is not None:
            duplicates.append(structure.name)
            continue
        fresh.append(structure)
    order = np.random.default_rng(seed).permutation(len(fresh))
    n_test = int(len(fresh) * test_size)
    to_test = set(order[:n_test].tolist())
    added_test = [s for i, s in enumerate(fresh) if i in to_test]
    added_train = [s for i, s in enumerate(fresh) if i not in to_test]
    training = [*previous_training, *added_train]
    test = [*previous_test, *added_test]
    if not training:
        raise ValueError("no training structure: the parent had none and every new one is test")
    return Accumulated(
        training=Dataset.of_checked(training, source=new.source, neighbours=new.neighbours),
        test=(
            Dataset.of_checked(test, source=new.source, neighbours=new.neighbours) if test else None
        ),
        n_inherited=len(previous_training),
        n_test_inherited=len(previous_test),
        n_added_train=len(added_train),
        n_added_test=len(added_test),
        n_duplicates=len(duplicates),
        duplicates=tuple(duplicates),
    )


@dataclass(frozen=True)
class CopiesSplit:
    """A train/test split of data holding identical structures, each group on one side."""

    training: Dataset
    test: Dataset
    n_copies: int  # structures identical to an earlier one of the data
    n_groups: int  # groups of identical structures


def copy_groups(dataset: Dataset, tolerance: float = DUPLICATE_TOLERANCE) -> list[list[int]]:
    """Indices of ``dataset`` grouped by identical structure (:func:`same_structure`), in order."""
    index = StructureIndex(tolerance)
    groups: list[list[int]] = []
    group_of: dict[int, int] = {}  # id() of the first structure of a group: its group
    for i, structure in enumerate(dataset):
        known = index.find_or_add(structure)
        if known is None:
            group_of[id(structure)] = len(groups)
            groups.append([i])
        else:
            groups[group_of[id(known)]].append(i)
    return groups


def split_keeping_copies_together(
    dataset: Dataset, test_size: float, seed: int, tolerance: float = DUPLICATE_TOLERANCE
) -> CopiesSplit | None:
    """A seeded split with ``test_size`` of the structures (rounded down, as pacemaker does) in
    the test set, every group of identical structures on one side; None when ``dataset`` holds
    no identical structures or ``test_size`` is 0 (pacemaker's own split is then the same)."""
    groups = copy_groups(dataset, tolerance)
    if test_size <= 0 or len(groups) == len(dataset):
        return None
    n_test = int(len(dataset) * test_size)
    test: list[int] = []
    for g in np.random.default_rng(seed).permutation(len(groups)):
        if len(test) + len(groups[g]) <= n_test:
            test += groups[g]
    if not test:  # every group is larger than the test set: one whole group still goes
        test = groups[int(np.random.default_rng(seed).integers(len(groups)))]
    if n_test == 0 or len(test) == len(dataset):
        return None
    in_test = set(test)
    training = [i for i in range(len(dataset)) if i not in in_test]
    return CopiesSplit(
        training=dataset.subset(training),
        test=dataset.subset(sorted(test)),
        n_copies=len(dataset) - len(groups),
        n_groups=sum(1 for group in groups if len(group) > 1),
    )
