"""The one neighbour search per structure (vesin) against ASE's neighbor_list, and its table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list

from mlip_autopipec.domain_models.neighbours import (
    NeighbourTable,
    neighbour_pairs,
    structure_hash,
    summarise,
)


def _rattled(atoms: Atoms, seed: int) -> Atoms:
    atoms = atoms.copy()
    atoms.positions += np.random.default_rng(seed).normal(0.0, 0.1, atoms.positions.shape)
    return atoms


def _alloy(atoms: Atoms, seed: int) -> Atoms:
    atoms = atoms.copy()
    atoms.symbols = np.random.default_rng(seed).choice(["Cu", "Pt", "Ag"], len(atoms))
    return atoms


def _cases() -> list[tuple[str, Atoms]]:
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    slab.pbc = [True, True, False]
    sheared = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    sheared.cell[2] += [1.1, -0.7, 0.0]
    return [
        ("periodic fcc cell", _rattled(bulk("Cu", "fcc", a=3.6, cubic=True) * 2, 1)),
        ("one atom in a cell far smaller than the cutoff", bulk("Cu", "fcc", a=3.6)),
        ("triclinic, smaller than the cutoff", _alloy(_rattled(sheared, 2), 3)),
        ("non-periodic molecule", molecule("CH3CH2OH")),
        ("non-periodic, no cell", _rattled(Atoms("Cu4", positions=np.eye(4, 3) * 2.2), 4)),
        ("periodic in x and y only (slab)", _alloy(_rattled(slab, 5), 6)),
        ("periodic in x only, small", Atoms("Pt2", [[0, 0, 0], [0.3, 1.5, 0.4]], cell=[1.9, 0, 0])),
        ("positions outside the cell", Atoms("Cu2", [[-3.0, 0, 0], [5.0, 4, 9]], cell=[3.0] * 3)),
    ]


CASES = _cases()


@pytest.mark.parametrize(("label", "atoms"), CASES, ids=[label for label, _ in CASES])
@pytest.mark.parametrize("cutoff", [2.6, 5.0, 7.5])
def test_pairs_are_those_of_ase(label: str, atoms: Atoms, cutoff: float) -> None:
    if label == "periodic in x only, small":
        atoms.pbc = [True, False, False]
    if label == "positions outside the cell":
        atoms.pbc = True
    first, second, distances, vectors = neighbour_pairs(atoms, cutoff)
    expected = neighbor_list("ijdD", atoms, cutoff)

    def rows(i: np.ndarray, j: np.ndarray, d: np.ndarray, v: np.ndarray) -> np.ndarray:
        table = np.column_stack([i, j, d, v])
        return table[np.lexsort(np.round(table, 6).T[::-1])]

    assert len(distances) == len(expected[0]), label
    np.testing.assert_allclose(
        rows(first, second, distances, vectors), rows(*expected), atol=1e-9, err_msg=label
    )
    assert np.all(distances < cutoff)


@pytest.mark.parametrize(("label", "atoms"), CASES, ids=[label for label, _ in CASES])
def test_summary_holds_counts_lone_atoms_and_shortest_distance_per_pair(
    label: str, atoms: Atoms
) -> None:
    if label == "periodic in x only, small":
        atoms.pbc = [True, False, False]
    if label == "positions outside the cell":
        atoms.pbc = True
    cutoff = 4.0
    summary = summarise(atoms, cutoff)
    first, second, distances = neighbor_list("ijd", atoms, cutoff)

    assert summary.n_pairs == len(distances)
    counts = np.bincount(first, minlength=len(atoms))
    assert summary.lonely.tolist() == np.flatnonzero(counts == 0).tolist()
    numbers = atoms.numbers
    expected: dict[tuple[int, int], float] = {}
    for a, b, d in zip(numbers[first], numbers[second], distances, strict=True):
        key = (int(min(a, b)), int(max(a, b)))
        expected[key] = min(float(d), expected.get(key, np.inf))
    got = {
        (int(a), int(b)): float(d)
        for (a, b), d in zip(summary.pair_numbers, summary.pair_shortest, strict=True)
    }
    assert got == pytest.approx(expected, abs=1e-12)


def test_a_lone_atom_and_an_empty_structure_of_pairs() -> None:
    summary = summarise(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 6.0]]), 5.0)

    assert summary.n_pairs == 0
    assert summary.lonely.tolist() == [0, 1]
    assert summary.pair_numbers.shape == (0, 2)


def test_the_hash_tells_structures_apart_by_every_part() -> None:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    moved, renamed, stretched, open_cell = atoms.copy(), atoms.copy(), atoms.copy(), atoms.copy()
    moved.positions[1, 0] += 1e-9
    renamed.numbers[0] = 78
    stretched.cell[0, 0] += 1e-9
    open_cell.pbc = [True, True, False]
    hashes = {structure_hash(a) for a in (atoms, moved, renamed, stretched, open_cell)}

    assert len(hashes) == 5
    assert structure_hash(atoms.copy()) == structure_hash(atoms)


def test_the_table_searches_each_structure_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlip_autopipec.domain_models import neighbours as module

    calls = []
    original = module.summarise

    def counting(atoms: Atoms, cutoff: float) -> module.StructureNeighbours:
        calls.append(len(atoms))
        return original(atoms, cutoff)

    monkeypatch.setattr(module, "summarise", counting)
    structures = [_rattled(bulk("Cu", "fcc", a=3.6, cubic=True), seed) for seed in range(3)]
    table = NeighbourTable(5.0)
    table.cover(structures)
    table.cover([s.copy() for s in structures])
    table.of(structures[1])

    assert len(calls) == 3
    assert len(table) == 3


def test_shortest_distances_over_structures_and_below_a_radius() -> None:
    dimer = Atoms("CuPt", positions=[[0, 0, 0], [0, 0, 2.3]])
    far = Atoms("Pt2", positions=[[0, 0, 0], [0, 0, 4.5]])
    fcc = bulk("Cu", "fcc", a=3.6)
    table = NeighbourTable(5.0)

    assert table.shortest_distances([fcc, dimer, far]) == pytest.approx(
        {("Cu", "Cu"): 3.6 / np.sqrt(2), ("Cu", "Pt"): 2.3, ("Pt", "Pt"): 4.5}
    )
    assert set(table.shortest_distances([fcc, dimer, far], radius=4.0)) == {
        ("Cu", "Cu"),
        ("Cu", "Pt"),
    }
    with pytest.raises(ValueError, match="beyond"):
        table.shortest_distances([fcc], radius=6.0)


def test_the_table_survives_its_file_at_the_same_cutoff_only(tmp_path: Path) -> None:
    structures = [
        _alloy(_rattled(bulk("Cu", "fcc", a=3.6, cubic=True), seed), seed) for seed in range(4)
    ]
    structures.append(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 9.0]]))  # lone atoms
    table = NeighbourTable(5.0)
    table.cover(structures)
    path = table.save(tmp_path / "neighbours.npz")

    loaded = NeighbourTable.load(path, 5.0)
    assert loaded is not None and len(loaded) == len(structures)
    for atoms in structures:
        saved, read = table.of(atoms), loaded.of(atoms)
        assert read.n_pairs == saved.n_pairs
        assert read.lonely.tolist() == saved.lonely.tolist()
        assert read.pair_numbers.tolist() == saved.pair_numbers.tolist()
        assert read.pair_shortest.tolist() == saved.pair_shortest.tolist()
    assert NeighbourTable.load(path, 6.0) is None
    assert NeighbourTable.load(tmp_path / "missing.npz", 5.0) is None
    (tmp_path / "broken.npz").write_bytes(b"not a numpy file")
    assert NeighbourTable.load(tmp_path / "broken.npz", 5.0) is None
    empty = NeighbourTable(5.0).save(tmp_path / "empty.npz")
    loaded_empty = NeighbourTable.load(empty, 5.0)
    assert loaded_empty is not None and len(loaded_empty) == 0


def test_update_takes_a_parent_table_only_at_the_same_cutoff() -> None:
    atoms = bulk("Cu", "fcc", a=3.6)
    parent = NeighbourTable(5.0)
    parent.of(atoms)
    child, other = NeighbourTable(5.0), NeighbourTable(4.0)
    child.update(parent)
    other.update(parent)
    child.update(None)

    assert len(child) == 1
    assert len(other) == 0


def test_searches_on_several_threads_give_the_same_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlip_autopipec.domain_models import neighbours as module

    structures = [_alloy(_rattled(atoms, seed), seed) for seed, (_, atoms) in enumerate(CASES)]
    structures = [a for a in structures if a.pbc.all() or not a.pbc.any()] * 3
    alone = NeighbourTable(4.0)
    expected = [alone.of(atoms) for atoms in structures]
    monkeypatch.setattr(module, "_THREADED_FROM", 2)
    monkeypatch.setattr(module, "_search_threads", lambda: 3)
    threaded = NeighbourTable(4.0)
    found = threaded.cover(structures)

    assert len(threaded) == len(alone)
    for mine, theirs in zip(found, expected, strict=True):
        assert mine.n_pairs == theirs.n_pairs
        assert mine.lonely.tolist() == theirs.lonely.tolist()
        assert mine.pair_numbers.tolist() == theirs.pair_numbers.tolist()
        assert mine.pair_shortest.tolist() == theirs.pair_shortest.tolist()
