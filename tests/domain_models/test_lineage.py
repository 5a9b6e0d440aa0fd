"""Data that accumulate over generations: duplicates once, test structures stay test."""

from __future__ import annotations

import pytest

from mlip_autopipec.domain_models.dataset import Dataset, LabelledStructure
from mlip_autopipec.domain_models.lineage import (
    accumulate,
    copy_groups,
    same_structure,
    split_keeping_copies_together,
)


def _moved(structure: LabelledStructure, shift: float, name: str) -> LabelledStructure:
    atoms = structure.atoms.copy()
    atoms.positions[0, 0] += shift
    return LabelledStructure(atoms, structure.energy, structure.forces, name)


def test_same_structure_holds_within_the_tolerance_only(cu_pt_dataset: Dataset) -> None:
    first = cu_pt_dataset[0]
    assert same_structure(first, _moved(first, 1e-7, "copy"))
    assert not same_structure(first, _moved(first, 1e-3, "moved"))
    assert not same_structure(first, cu_pt_dataset[1])
    other = first.atoms.copy()
    other.numbers[0] = 79 if other.numbers[0] != 79 else 29  # another element, same place
    assert not same_structure(first, LabelledStructure(other, first.energy, first.forces, "Au"))


def test_new_structures_add_to_the_parents_and_duplicates_count_once(
    cu_pt_dataset: Dataset,
) -> None:
    structures = list(cu_pt_dataset)
    train, test, fresh = structures[:6], structures[6:8], structures[8:]
    new = Dataset(
        [
            *fresh,
            _moved(train[0], 1e-7, "copy of a training structure"),
            _moved(test[1], 0.0, "copy of a test structure"),
            _moved(fresh[0], 0.0, "copy of a new one"),
            _moved(train[0], 0.01, "a different structure"),
        ]
    )
    result = accumulate(train, test, new, test_size=0.0, seed=0)
    assert result.n_duplicates == 3
    assert set(result.duplicates) == {
        "copy of a training structure",
        "copy of a test structure",
        "copy of a new one",
    }
    assert result.n_inherited == 6 and result.n_test_inherited == 2
    assert result.n_added_train == len(fresh) + 1 and result.n_added_test == 0
    assert [s.name for s in result.training] == [
        *(s.name for s in train),
        *(s.name for s in fresh),
        "a different structure",
    ]
    assert result.test is not None and [s.name for s in result.test] == [s.name for s in test]


def test_the_parents_test_structures_stay_test_and_new_ones_split_by_seed(
    cu_pt_dataset: Dataset,
) -> None:
    structures = list(cu_pt_dataset)
    train, test = structures[:4], structures[4:6]
    new = Dataset(structures[6:])  # 7 structures
    first = accumulate(train, test, new, test_size=0.3, seed=5)
    again = accumulate(train, test, new, test_size=0.3, seed=5)
    assert first.n_added_test == 2 and first.n_added_train == 5
    assert first.test is not None and again.test is not None
    assert [s.name for s in first.test] == [s.name for s in again.test]
    test_names = {s.name for s in first.test}
    assert {s.name for s in test} <= test_names
    assert not test_names & {s.name for s in first.training}
    assert len(first.training) + len(first.test) == len(structures)
    names = {
        tuple(s.name for s in accumulate(train, test, new, test_size=0.3, seed=seed).training)
        for seed in range(6)
    }
    assert len(names) > 1  # the seed chooses


def test_nothing_to_train_on_is_refused(cu_pt_dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="no training structure"):
        accumulate([], [], Dataset([cu_pt_dataset[0]]), test_size=1.0, seed=0)


def _with_copies(dataset: Dataset) -> Dataset:
    """``dataset`` with structure 0 three times more and structures 1 and 2 once more."""
    picks = [*range(len(dataset)), 0, 0, 1, 0, 2]
    return dataset.subset(picks)


def _has_twin(structure: LabelledStructure, others: Dataset) -> bool:
    return any(same_structure(structure, other) for other in others)


def test_identical_structures_of_the_data_are_grouped(cu_pt_dataset: Dataset) -> None:
    n = len(cu_pt_dataset)
    groups = copy_groups(_with_copies(cu_pt_dataset))
    assert len(groups) == n
    assert groups[0] == [0, n, n + 1, n + 3] and groups[1] == [1, n + 2]
    assert groups[2] == [2, n + 4] and groups[3] == [3]


@pytest.mark.parametrize("seed", range(8))
def test_copies_stay_on_one_side_of_the_split(cu_pt_dataset: Dataset, seed: int) -> None:
    data = _with_copies(cu_pt_dataset)
    split = split_keeping_copies_together(data, test_size=0.3, seed=seed)
    assert split is not None and (split.n_copies, split.n_groups) == (5, 3)
    assert len(split.training) + len(split.test) == len(data)
    assert 0 < len(split.test) <= int(len(data) * 0.3)
    assert not any(_has_twin(structure, split.training) for structure in split.test)
    again = split_keeping_copies_together(data, test_size=0.3, seed=seed)
    assert again is not None and [s.name for s in again.test] == [s.name for s in split.test]


def test_data_without_copies_keeps_pacemakers_split(cu_pt_dataset: Dataset) -> None:
    assert split_keeping_copies_together(cu_pt_dataset, test_size=0.3, seed=1) is None
    assert split_keeping_copies_together(_with_copies(cu_pt_dataset), 0.0, seed=1) is None


@pytest.mark.parametrize("shift", [-4e-6, 4e-6])
def test_a_duplicate_is_found_across_a_cell_of_the_index_grid(
    cu_pt_dataset: Dataset, shift: float
) -> None:
    from mlip_autopipec.domain_models.lineage import StructureIndex

    # The first atom just on one side of a grid line, its duplicate just on the other.
    first = cu_pt_dataset[0]
    atoms = first.atoms.copy()
    atoms.positions[0] = [0.02 - 1e-6, 0.5, -0.01 + 1e-6]
    original = LabelledStructure(atoms, first.energy, first.forces, "original")
    index = StructureIndex()
    index.add(original)

    assert index.find(_moved(original, shift, "copy")) is original
    assert index.find(_moved(original, 1e-3, "moved")) is None


def test_the_same_first_atom_is_not_enough_for_a_copy(cu_pt_dataset: Dataset) -> None:
    from mlip_autopipec.domain_models.lineage import StructureIndex

    first = cu_pt_dataset[0]
    other = first.atoms.copy()
    other.positions[-1] += [0.0, 2e-5, 0.0]
    index = StructureIndex()
    index.add(first)

    assert index.find(LabelledStructure(other, first.energy, first.forces, "other")) is None
    assert index.find_or_add(LabelledStructure(other, first.energy, first.forces, "x")) is None
    assert index.find(LabelledStructure(other.copy(), first.energy, first.forces, "y")) is not None
