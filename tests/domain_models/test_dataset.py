"""Labelled structures: reading labels from ASE, and refusing structures that cannot be fitted."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.domain_models.dataset import Dataset, LabelledStructure, shortest_distances
from mlip_autopipec.errors import DatasetValidationError


def emt_labelled(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` with EMT energy and forces stored in a SinglePointCalculator."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def cu_cells(count: int = 3) -> list[Atoms]:
    """Rattled fcc Cu cells (4 atoms), one Pt each from the second on, EMT-labelled."""
    images = []
    for index in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        if index:
            atoms.symbols[index % 4] = "Pt"
        atoms.rattle(0.05, seed=index)
        atoms.info["name"] = f"cell_{index}"
        images.append(emt_labelled(atoms))
    return images


def labelled(atoms: Atoms, energy: float = -1.0, forces: np.ndarray | None = None) -> Atoms:
    atoms.calc = SinglePointCalculator(
        atoms, energy=energy, forces=np.zeros((len(atoms), 3)) if forces is None else forces
    )
    return atoms


def structure(atoms: Atoms, name: str = "s", **changes: object) -> LabelledStructure:
    fields: dict[str, object] = {
        "atoms": atoms,
        "energy": -1.0,
        "forces": np.zeros((len(atoms), 3)),
        "name": name,
    }
    fields.update(changes)
    return LabelledStructure(**fields)  # type: ignore[arg-type]


def rejection(images: list[Atoms], source: str | None = "train.xyz") -> DatasetValidationError:
    with pytest.raises(DatasetValidationError) as caught:
        Dataset.from_atoms(images, source=source)
    return caught.value


# -- construction ---------------------------------------------------------------------------------


def test_from_atoms_reads_labels_from_the_calculator() -> None:
    images = cu_cells(3)
    dataset = Dataset.from_atoms(images, source="emt.xyz")

    assert len(dataset) == 3
    assert dataset.source == "emt.xyz"
    assert [s.name for s in dataset] == ["cell_0", "cell_1", "cell_2"]
    for atoms, labelled_structure in zip(images, dataset, strict=True):
        assert labelled_structure.energy == atoms.calc.results["energy"]
        assert np.array_equal(labelled_structure.forces, atoms.calc.results["forces"])
        assert np.array_equal(labelled_structure.atoms.positions, atoms.positions)
        assert labelled_structure.atoms.calc is None
        assert "name" not in labelled_structure.info
    assert dataset.n_atoms == 12
    assert dataset.elements == ("Cu", "Pt")


def test_from_atoms_copies_the_structures() -> None:
    images = cu_cells(1)
    dataset = Dataset.from_atoms(images)
    images[0].positions[0] += 1.0
    images[0].calc.results["forces"][0, 0] = 99.0

    assert not np.array_equal(dataset[0].atoms.positions, images[0].positions)
    assert dataset[0].forces[0, 0] != 99.0


def test_from_atoms_reads_labels_from_info_and_arrays_with_custom_keys() -> None:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    forces = np.arange(12.0).reshape(4, 3)
    atoms.info["dft_energy"] = -14.25
    atoms.info["config_type"] = "bulk"
    atoms.arrays["dft_forces"] = forces
    dataset = Dataset.from_atoms([atoms], energy_key="dft_energy", forces_key="dft_forces")

    assert dataset[0].energy == -14.25
    assert np.array_equal(dataset[0].forces, forces)
    assert dataset[0].name == "bulk/0"
    assert "dft_energy" not in dataset[0].info
    assert dataset[0].info["config_type"] == "bulk"


def test_named_keys_win_over_the_calculator() -> None:
    # extxyz files with REF_energy/REF_forces also often hold a model's "energy" and "forces",
    # which ASE puts in a calculator; asking for REF_* must give the REF labels.
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.info["REF_energy"] = -14.25
    atoms.arrays["REF_forces"] = np.ones((4, 3))
    labelled(atoms, energy=99.0)
    dataset = Dataset.from_atoms([atoms], energy_key="REF_energy", forces_key="REF_forces")

    assert dataset[0].energy == -14.25
    assert np.array_equal(dataset[0].forces, np.ones((4, 3)))


def test_weights_come_from_info() -> None:
    images = cu_cells(2)
    images[0].info["energy_weight"] = 2.0
    images[0].info["force_weight"] = 0.5
    dataset = Dataset.from_atoms(images)

    assert dataset[0].energy_weight == 2.0
    assert dataset[0].force_weight == 0.5
    assert dataset[1].energy_weight is None
    assert dataset.has_weights
    assert not Dataset.from_atoms(cu_cells(2)).has_weights


def test_read_extxyz_names_from_name_config_type_and_file_stem(tmp_path: Path) -> None:
    images = cu_cells(3)
    del images[1].info["name"]
    images[1].info["config_type"] = "alloy"
    del images[2].info["name"]
    path = tmp_path / "cu_pt.xyz"
    ase.io.write(path, images, format="extxyz")

    dataset = Dataset.read(path)

    assert [s.name for s in dataset] == ["cell_0", "alloy/1", "cu_pt/2"]
    assert dataset.source == path
    assert dataset.elements == ("Cu", "Pt")
    for atoms, read in zip(images, dataset, strict=True):
        assert read.energy == pytest.approx(atoms.calc.results["energy"], abs=1e-12)
        assert np.allclose(read.forces, atoms.calc.results["forces"], atol=1e-12)
        assert np.allclose(read.atoms.cell, atoms.cell)


def test_read_a_single_image(tmp_path: Path) -> None:
    path = tmp_path / "one.xyz"
    ase.io.write(path, cu_cells(2), format="extxyz")
    dataset = Dataset.read(path, index="-1")
    assert len(dataset) == 1
    assert dataset[0].name == "cell_1"


def test_elements_are_sorted_alphabetically() -> None:
    images = [labelled(Atoms("PtCuAu", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]]))]
    assert Dataset.from_atoms(images).elements == ("Au", "Cu", "Pt")


def test_non_periodic_molecule_with_zero_cell_is_fine() -> None:
    water = molecule("H2O")
    assert not water.pbc.any()
    assert np.allclose(water.cell, 0.0)
    dataset = Dataset.from_atoms([labelled(water)])
    assert dataset.elements == ("H", "O")


def test_single_isolated_atom_is_fine() -> None:
    assert len(Dataset.from_atoms([labelled(Atoms("Cu"))])) == 1


# -- validation -----------------------------------------------------------------------------------


def test_empty_dataset_is_rejected_naming_the_source() -> None:
    error = rejection([], source="empty.xyz")
    assert "empty" in str(error)
    assert "empty.xyz" in str(error)
    assert error.index is None


def test_missing_energy_is_rejected() -> None:
    images = cu_cells(2)
    images[1].calc = None
    images[1].arrays["forces"] = np.zeros((4, 3))
    error = rejection(images)

    assert (error.index, error.name, error.source) == (1, "cell_1", "train.xyz")
    message = str(error)
    assert message.startswith("structure 1 'cell_1' in train.xyz:")
    assert "no energy label" in message
    assert "atoms.info['energy']" in message


def test_missing_forces_are_rejected() -> None:
    images = cu_cells(3)
    images[2].calc = None
    images[2].info["energy"] = -1.0
    error = rejection(images)

    assert (error.index, error.name) == (2, "cell_2")
    assert "no forces label" in str(error)
    assert "atoms.arrays['forces']" in str(error)
    assert "structure 2 'cell_2' in train.xyz" in str(error)


def test_energy_that_is_no_number_is_rejected() -> None:
    atoms = bulk("Cu", cubic=True)
    atoms.info["energy"] = "low"
    atoms.arrays["forces"] = np.zeros((4, 3))
    error = rejection([atoms])
    assert error.index == 0
    assert "energy label is not a number: 'low'" in str(error)


@pytest.mark.parametrize("energy", [np.nan, np.inf])
def test_non_finite_energy_is_rejected(energy: float) -> None:
    images = cu_cells(2)
    labelled(images[1], energy=energy)
    error = rejection(images)

    assert (error.index, error.name, error.source) == (1, "cell_1", "train.xyz")
    assert f"energy is not finite ({energy})" in str(error)


def test_nan_and_inf_forces_are_rejected_naming_the_atoms() -> None:
    images = cu_cells(2)
    forces = np.zeros((4, 3))
    forces[1, 2] = np.nan
    forces[3, 0] = -np.inf
    labelled(images[1], forces=forces)
    error = rejection(images)

    assert (error.index, error.name) == (1, "cell_1")
    assert "forces contain NaN or inf (atoms [1, 3])" in str(error)
    assert "in train.xyz" in str(error)


def test_forces_of_wrong_shape_are_rejected() -> None:
    images = cu_cells(1)
    labelled(images[0], forces=np.zeros((3, 3)))
    error = rejection(images)

    assert (error.index, error.name) == (0, "cell_0")
    assert "forces have shape (3, 3), expected (4, 3) for 4 atoms" in str(error)


def test_atoms_closer_than_a_tenth_of_an_angstrom_are_rejected() -> None:
    images = cu_cells(2)
    images.append(labelled(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 0.05]])))
    images[-1].info["name"] = "collapsed"
    error = rejection(images)

    assert (error.index, error.name) == (2, "collapsed")
    assert "atoms 0 and 1 are 0.0500 Å apart (closer than 0.1 Å)" in str(error)


def test_atom_close_to_its_own_periodic_image_is_rejected() -> None:
    atoms = labelled(Atoms("Cu", cell=[0.05, 0.05, 0.05], pbc=True))
    atoms.info["name"] = "tiny"
    error = rejection([atoms])

    assert (error.index, error.name) == (0, "tiny")
    assert "every atom is 0.0500 Å from its own periodic image (closer than 0.1 Å)" in str(error)


def test_short_lattice_vector_of_a_sheared_cell_is_found() -> None:
    # No cell vector is short, but a - b is 0.05 Å long.
    cell = [[3.0, 0.0, 0.0], [3.0, 0.05, 0.0], [0.0, 0.0, 3.0]]
    error = rejection([labelled(Atoms("Cu", cell=cell, pbc=True))])
    assert "every atom is 0.0500 Å from its own periodic image" in str(error)


def test_short_vector_in_a_non_periodic_direction_is_no_image() -> None:
    atoms = Atoms("Cu", cell=[3.0, 3.0, 0.05], pbc=[True, True, False])
    assert len(Dataset.from_atoms([labelled(atoms)])) == 1


def test_close_atoms_across_the_periodic_boundary_are_rejected() -> None:
    atoms = Atoms("Cu2", positions=[[0.02, 1, 1], [3.98, 1, 1]], cell=[4, 4, 4], pbc=True)
    error = rejection([labelled(atoms)])
    assert "atoms 0 and 1 are 0.0400 Å apart" in str(error)


def test_periodic_cell_with_zero_volume_is_rejected() -> None:
    cell = [[3.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 3.0]]
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [1.5, 0, 1.5]], cell=cell, pbc=True)
    atoms.info["name"] = "flat"
    error = rejection([labelled(atoms)])

    assert (error.index, error.name) == (0, "flat")
    assert "cell has zero volume in its periodic directions (xyz)" in str(error)
    assert "[3.0, 0.0, 0.0], [3.0, 0.0, 0.0]" in str(error)


def test_periodic_cell_with_zero_vector_is_rejected() -> None:
    atoms = Atoms("Cu", cell=[3.0, 3.0, 0.0], pbc=True)
    error = rejection([labelled(atoms)])
    assert "cell has zero volume" in str(error)


def test_slab_with_zero_vector_only_in_non_periodic_direction_is_fine() -> None:
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [1.5, 1.5, 1.8]], cell=[3, 3, 0], pbc=[1, 1, 0])
    assert len(Dataset.from_atoms([labelled(atoms)])) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("energy_weight", -1.0), ("force_weight", -0.5), ("energy_weight", np.nan)],
)
def test_negative_or_nan_weight_is_rejected(field: str, value: float) -> None:
    images = cu_cells(2)
    images[1].info[field] = value
    error = rejection(images)

    assert (error.index, error.name) == (1, "cell_1")
    assert f"{field} must be a finite number >= 0, got {value}" in str(error)


def test_zero_weight_is_allowed() -> None:
    images = cu_cells(2)
    images[0].info["energy_weight"] = 0.0
    assert Dataset.from_atoms(images)[0].energy_weight == 0.0


def test_positions_with_nan_are_rejected() -> None:
    atoms = bulk("Cu", cubic=True)
    atoms.positions[2, 1] = np.nan
    error = rejection([labelled(atoms)])
    assert "positions contain NaN or inf" in str(error)


def test_structure_without_atoms_is_rejected() -> None:
    with pytest.raises(DatasetValidationError, match=r"structure 0 'void'.*has no atoms"):
        Dataset([structure(Atoms(), name="void")], source="x")


def test_constructor_validates_with_the_source() -> None:
    good = structure(bulk("Cu", cubic=True), name="good")
    bad = structure(bulk("Cu", cubic=True), name="bad", energy=np.nan)
    with pytest.raises(DatasetValidationError) as caught:
        Dataset([good, bad], source="db.json")
    assert str(caught.value) == "structure 1 'bad' in db.json: energy is not finite (nan)"


def test_read_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.xyz"
    with pytest.raises(DatasetValidationError) as caught:
        Dataset.read(path)
    assert caught.value.source == path
    assert str(caught.value) == f"in {path}: file does not exist"


def test_read_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.xyz"
    path.write_text("this is not\nan xyz file at all\n")
    with pytest.raises(DatasetValidationError) as caught:
        Dataset.read(path)
    assert caught.value.source == path
    assert str(path) in str(caught.value)
    assert "ASE cannot read it" in str(caught.value)


def test_read_file_with_unlabelled_structure_names_file_and_structure(tmp_path: Path) -> None:
    images = cu_cells(2)
    images[1].calc = None
    path = tmp_path / "half.xyz"
    ase.io.write(path, images, format="extxyz")
    with pytest.raises(DatasetValidationError) as caught:
        Dataset.read(path)
    assert str(caught.value).startswith(f"structure 1 'cell_1' in {path}: no energy label")


# -- sequence behaviour ---------------------------------------------------------------------------


def test_indexing_slicing_and_subset() -> None:
    dataset = Dataset.from_atoms(cu_cells(4), source="s.xyz")

    assert dataset[1].name == "cell_1"
    assert dataset[-1].name == "cell_3"
    sliced = dataset[1:3]
    assert isinstance(sliced, Dataset)
    assert [s.name for s in sliced] == ["cell_1", "cell_2"]
    assert sliced.source == "s.xyz"
    assert [s.name for s in dataset[::2]] == ["cell_0", "cell_2"]
    subset = dataset.subset([3, 0])
    assert [s.name for s in subset] == ["cell_3", "cell_0"]
    assert subset[0] is dataset[3]
    with pytest.raises(DatasetValidationError, match="empty"):
        dataset[4:]


def test_to_atoms_attaches_labels() -> None:
    dataset = Dataset.from_atoms(cu_cells(2))
    [first, _] = dataset.to_atoms()

    assert first.get_potential_energy() == dataset[0].energy
    assert np.array_equal(first.get_forces(), dataset[0].forces)
    assert first.info["name"] == "cell_0"


def test_fingerprint_is_stable_and_sees_one_changed_force() -> None:
    images = cu_cells(3)
    reference = Dataset.from_atoms(images).fingerprint()

    assert Dataset.from_atoms(images).fingerprint() == reference
    assert Dataset.from_atoms(cu_cells(3)).fingerprint() == reference
    assert len(reference) == 64

    changed = cu_cells(3)
    changed[2].calc.results["forces"][3, 1] += 1e-9
    assert Dataset.from_atoms(changed).fingerprint() != reference

    renamed = cu_cells(3)
    renamed[0].info["name"] = "other name"
    assert Dataset.from_atoms(renamed).fingerprint() == reference  # names are not data

    assert Dataset.from_atoms(images[:2]).fingerprint() != reference


def test_fingerprint_sees_energy_and_positions() -> None:
    reference = Dataset.from_atoms(cu_cells(2)).fingerprint()
    shifted_energy = cu_cells(2)
    shifted_energy[0].calc.results["energy"] += 1e-6
    moved = cu_cells(2)
    moved[1].positions[0, 0] += 1e-6

    assert Dataset.from_atoms(shifted_energy).fingerprint() != reference
    assert Dataset.from_atoms(moved).fingerprint() != reference


# -- shortest distances ---------------------------------------------------------------------------


def test_shortest_distance_in_fcc_copper() -> None:
    dataset = Dataset.from_atoms([labelled(bulk("Cu", "fcc", a=3.6))])
    distances = shortest_distances(dataset)

    assert list(distances) == [("Cu", "Cu")]
    assert distances[("Cu", "Cu")] == pytest.approx(3.6 / np.sqrt(2), abs=1e-12)


def test_shortest_distance_of_a_dimer_with_sorted_pair_key() -> None:
    dimer = labelled(Atoms("PtCu", positions=[[0, 0, 0], [0, 0, 2.3]]))
    distances = shortest_distances(Dataset.from_atoms([dimer]))

    assert distances == {("Cu", "Pt"): pytest.approx(2.3, abs=1e-12)}


def test_shortest_distance_per_pair_over_all_structures() -> None:
    fcc = labelled(bulk("Cu", "fcc", a=3.6))
    dimer = labelled(Atoms("CuPt", positions=[[0, 0, 0], [0, 0, 2.3]]))
    far = labelled(Atoms("Pt2", positions=[[0, 0, 0], [0, 0, 7.0]]))
    distances = shortest_distances(Dataset.from_atoms([fcc, dimer, far]))

    assert set(distances) == {("Cu", "Cu"), ("Cu", "Pt")}  # Pt-Pt beyond the search radius
    assert distances[("Cu", "Pt")] == pytest.approx(2.3)
    assert distances[("Cu", "Cu")] == pytest.approx(3.6 / np.sqrt(2))
    assert shortest_distances(Dataset.from_atoms([far]), search_radius=8.0) == {
        ("Pt", "Pt"): pytest.approx(7.0)
    }


def test_the_fast_close_pair_screen_never_misses_a_close_pair() -> None:
    from ase.neighborlist import neighbor_list

    from mlip_autopipec.domain_models.validation import (
        MIN_INTERATOMIC_DISTANCE,
        _no_pair_can_be_close,
    )

    rng = np.random.default_rng(3)
    cleared = 0
    for trial in range(300):
        periodic = trial % 3 != 0
        cell = np.diag(rng.uniform(2.0, 5.0, 3)) + np.triu(rng.uniform(-1.5, 1.5, (3, 3)), 1)
        n_atoms = int(rng.integers(2, 12))
        fractional = rng.uniform(0, 1, (n_atoms, 3))
        if trial % 2:  # plant a pair just across a cell face, or just inside the limit
            fractional[1] = fractional[0] + [rng.uniform(-0.03, 0.03), 0.0, 0.0]
            fractional[1, 0] += rng.choice([0.0, 1.0, -1.0])
        atoms = Atoms("Cu" * n_atoms, scaled_positions=fractional, cell=cell, pbc=periodic)
        close = len(neighbor_list("d", atoms, MIN_INTERATOMIC_DISTANCE)) > 0
        screened_clean = _no_pair_can_be_close(atoms)
        assert not (close and screened_clean), f"trial {trial}: a close pair was missed"
        cleared += screened_clean
    assert cleared > 100, "the screen should clear most structures without close pairs"


def test_close_pairs_are_refused_exactly_where_ase_finds_them() -> None:
    from ase.neighborlist import neighbor_list

    from mlip_autopipec.domain_models.validation import MIN_INTERATOMIC_DISTANCE

    rng = np.random.default_rng(4)
    refused = 0
    for trial in range(120):
        pbc = [[True] * 3, [False] * 3, [True, True, False]][trial % 3]
        cell = np.diag(rng.uniform(0.5, 5.0, 3)) + np.triu(rng.uniform(-1.5, 1.5, (3, 3)), 1)
        n_atoms = int(rng.integers(2, 12))
        fractional = rng.uniform(0, 1, (n_atoms, 3))
        if trial % 2:  # plant a pair just across a cell face, or just inside the limit
            fractional[1] = fractional[0] + [rng.uniform(-0.03, 0.03), 0.0, 0.0]
            fractional[1, 0] += rng.choice([0.0, 1.0, -1.0])
        atoms = Atoms("Cu" * n_atoms, scaled_positions=fractional, cell=cell, pbc=pbc)
        if len(neighbor_list("d", atoms, MIN_INTERATOMIC_DISTANCE)):
            with pytest.raises(DatasetValidationError, match=r"apart|periodic image"):
                Dataset([LabelledStructure(atoms, 0.0, np.zeros((n_atoms, 3)), "s")])
            refused += 1
        else:
            Dataset([LabelledStructure(atoms, 0.0, np.zeros((n_atoms, 3)), "s")])
    assert refused > 20, "the planted pairs should give many close pairs"


def test_with_a_table_the_check_of_close_atoms_is_the_structures_one_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlip_autopipec.domain_models import neighbours as module
    from mlip_autopipec.domain_models import validation

    searched: list[int] = []
    original = module.summarise

    def counting(atoms: Atoms, cutoff: float) -> module.StructureNeighbours:
        searched.append(len(atoms))
        return original(atoms, cutoff)

    def no_second_search(*args: object, **kwargs: object) -> None:
        raise AssertionError("a second neighbour search")

    monkeypatch.setattr(module, "summarise", counting)
    monkeypatch.setattr(module, "neighbour_pairs", no_second_search)
    monkeypatch.setattr(validation, "_no_pair_can_be_close", no_second_search)
    path = tmp_path / "cells.extxyz"
    ase.io.write(path, cu_cells(3))
    table = module.NeighbourTable(4.0)
    dataset = Dataset.read(path, neighbours=table)

    assert len(searched) == 3 and len(table) == 3
    assert dataset.neighbours is table
    assert dataset.subset([2, 0]).neighbours is table
    assert dataset[1:].neighbours is table
    for structure in dataset:  # what later consumers read is there
        assert table.of(structure.atoms).n_pairs > 0
    assert len(searched) == 3


@pytest.mark.parametrize(
    "atoms",
    [
        Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 0.05]]),
        Atoms("Cu2", positions=[[0.02, 1, 1], [3.98, 1, 1]], cell=[4, 4, 4], pbc=True),
    ],
    ids=["molecule", "across the boundary"],
)
def test_with_a_table_close_atoms_are_still_named(atoms: Atoms) -> None:
    from mlip_autopipec.domain_models.neighbours import NeighbourTable

    images = [*cu_cells(1), labelled(atoms)]
    with pytest.raises(DatasetValidationError) as caught:
        Dataset.from_atoms(images)
    without = str(caught.value)
    with pytest.raises(DatasetValidationError) as caught:
        Dataset(
            [s for s in Dataset.from_atoms(images[:1])] + [_bare(images[1])],
            neighbours=NeighbourTable(5.0),
        )
    assert caught.value.index == 1
    assert str(caught.value).split(": ", 1)[-1] == without.split(": ", 1)[-1]
    assert "apart (closer than 0.1 Å)" in without


def _bare(atoms: Atoms) -> LabelledStructure:
    return structure(atoms.copy(), name="structure/1")
