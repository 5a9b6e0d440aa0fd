"""pacemaker's data file: a lossless round trip, its columns, weights and refused structures."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.domain_models.dataset import Dataset, LabelledStructure
from mlip_autopipec.errors import DatasetValidationError
from mlip_autopipec.infrastructure.pacemaker.data_file import (
    dataframe_to_dataset,
    dataset_to_dataframe,
    read_data_file,
    write_data_file,
)

REFERENCE = {"Cu": -3.25, "Pt": -5.5}


def emt_images() -> list[Atoms]:
    """Rattled, strained Cu-Pt cells of different sizes and a non-periodic dimer, EMT-labelled."""
    rng = np.random.default_rng(3)
    images = []
    for index in range(5):
        atoms = bulk("Cu", "fcc", a=3.65 * (1 + rng.uniform(-0.03, 0.03)), cubic=True)
        atoms = atoms.repeat((1 + index % 2, 1, 1))
        atoms.symbols[rng.choice(len(atoms), size=index % 3, replace=False)] = "Pt"
        atoms.rattle(0.07, seed=index)
        atoms.info["name"] = f"alloy_{index}"
        images.append(atoms)
    dimer = Atoms("CuPt", positions=[[0, 0, 0], [0.1, 0.2, 2.3]])
    dimer.info["name"] = "dimer"
    images.append(dimer)
    for atoms in images:
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return images


@pytest.fixture
def dataset() -> Dataset:
    return Dataset.from_atoms(emt_images(), source="emt.xyz")


def with_weights(dataset: Dataset, weights: list[tuple[float | None, float | None]]) -> Dataset:
    return Dataset(
        [
            LabelledStructure(
                atoms=s.atoms,
                energy=s.energy,
                forces=s.forces,
                name=s.name,
                energy_weight=energy_weight,
                force_weight=force_weight,
            )
            for s, (energy_weight, force_weight) in zip(dataset, weights, strict=True)
        ]
    )


# -- round trip -----------------------------------------------------------------------------------


def test_round_trip_is_bit_identical(dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "train.pckl.gzip"
    write_data_file(dataset_to_dataframe(dataset, REFERENCE), path)
    back = dataframe_to_dataset(read_data_file(path), source=path)

    assert len(back) == len(dataset)
    assert back.source == path
    for original, read in zip(dataset, back, strict=True):
        assert read.name == original.name
        assert read.energy == original.energy
        assert np.array_equal(read.forces, original.forces)
        assert read.forces.dtype == np.float64
        assert np.array_equal(read.atoms.positions, original.atoms.positions)
        assert np.array_equal(read.atoms.cell.array, original.atoms.cell.array)
        assert np.array_equal(read.atoms.pbc, original.atoms.pbc)
        assert np.array_equal(read.atoms.numbers, original.atoms.numbers)
    assert back.fingerprint() == dataset.fingerprint()


def test_round_trip_keeps_info(tmp_path: Path) -> None:
    images = emt_images()[:2]
    images[0].info["config_type"] = "bulk"
    path = tmp_path / "train.pckl.gzip"
    write_data_file(dataset_to_dataframe(Dataset.from_atoms(images)), path)

    back = dataframe_to_dataset(read_data_file(path))
    assert back[0].info == {"config_type": "bulk"}
    assert back[1].info == {}


# -- columns --------------------------------------------------------------------------------------


def test_dataframe_has_pacemakers_columns(dataset: Dataset) -> None:
    frame = dataset_to_dataframe(dataset, REFERENCE)

    assert {"ase_atoms", "energy", "forces", "energy_corrected", "name"} <= set(frame.columns)
    assert not {"w_energy", "w_forces"} & set(frame.columns)
    assert len(frame) == len(dataset)
    assert list(frame["name"]) == [s.name for s in dataset]
    assert all(isinstance(atoms, Atoms) for atoms in frame["ase_atoms"])
    assert all(atoms.calc is None for atoms in frame["ase_atoms"])
    assert frame["energy"].dtype == np.float64
    assert list(frame["energy"]) == [s.energy for s in dataset]
    for forces, structure in zip(frame["forces"], dataset, strict=True):
        assert forces.shape == (structure.n_atoms, 3)


def test_dataframe_atoms_are_copies(dataset: Dataset) -> None:
    frame = dataset_to_dataframe(dataset)
    frame["ase_atoms"][0].positions[0, 0] += 1.0
    assert frame["ase_atoms"][0].positions[0, 0] != dataset[0].atoms.positions[0, 0]


def test_energy_corrected_subtracts_the_reference_energies(dataset: Dataset) -> None:
    frame = dataset_to_dataframe(dataset, REFERENCE)

    for row, structure in enumerate(dataset):
        symbols = structure.atoms.get_chemical_symbols()
        expected = (
            structure.energy
            - symbols.count("Cu") * REFERENCE["Cu"]
            - symbols.count("Pt") * REFERENCE["Pt"]
        )
        assert frame["energy_corrected"][row] == pytest.approx(expected, abs=1e-12)
    assert frame["energy_corrected"][0] != frame["energy"][0]


def test_without_reference_energies_energy_corrected_is_the_energy(dataset: Dataset) -> None:
    frame = dataset_to_dataframe(dataset)
    assert np.array_equal(frame["energy_corrected"], frame["energy"])


def test_missing_reference_energy_is_named(dataset: Dataset) -> None:
    with pytest.raises(ValueError, match=r"no reference energy for elements \['Pt'\]"):
        dataset_to_dataframe(dataset, {"Cu": -3.25})


# -- weights --------------------------------------------------------------------------------------


def test_weights_become_normalised_pacemaker_weights(dataset: Dataset) -> None:
    weighted = with_weights(
        dataset, [(2.0, 3.0), (None, None), (1.0, 0.0), (4.0, 1.0), (None, 2.0), (0.5, None)]
    )
    frame = dataset_to_dataframe(weighted)

    # w_energy: proportional to the given weights (None: 1), summing to 1.
    energy_weights = np.array([2.0, 1.0, 1.0, 4.0, 1.0, 0.5])
    assert frame["w_energy"].sum() == pytest.approx(1.0)
    assert np.allclose(frame["w_energy"], energy_weights / energy_weights.sum())

    # w_forces: one array per structure, one value per atom, summing to 1 over all atoms.
    force_weights = [3.0, 1.0, 0.0, 1.0, 2.0, 1.0]
    total = sum(w * s.n_atoms for w, s in zip(force_weights, weighted, strict=True))
    assert sum(float(w.sum()) for w in frame["w_forces"]) == pytest.approx(1.0)
    for per_atom, structure, weight in zip(frame["w_forces"], weighted, force_weights, strict=True):
        assert per_atom.shape == (structure.n_atoms,)
        assert np.allclose(per_atom, weight / total)


@pytest.mark.requires_pacemaker
def test_weights_are_normalised_as_pacemaker_does(dataset: Dataset) -> None:
    from pyace import preparedata

    weighted = with_weights(dataset, [(2.0, 3.0), (None, None), (1.0, 0.5)] + [(None, None)] * 3)
    frame = dataset_to_dataframe(weighted)
    renormalised = frame.copy()
    preparedata.normalize_energy_forces_weights(renormalised)

    assert np.allclose(renormalised["w_energy"], frame["w_energy"])
    for ours, theirs in zip(frame["w_forces"], renormalised["w_forces"], strict=True):
        assert np.allclose(ours, theirs)


def test_no_weight_columns_without_weights(dataset: Dataset) -> None:
    assert dataset.has_weights is False
    assert "w_energy" not in dataset_to_dataframe(dataset).columns
    assert "w_forces" not in dataset_to_dataframe(dataset).columns


@pytest.mark.parametrize(
    ("weights", "message"),
    [((0.0, None), "all energy weights are zero"), ((None, 0.0), "all force weights are zero")],
)
def test_all_zero_weights_are_rejected(
    dataset: Dataset, weights: tuple[float | None, float | None], message: str
) -> None:
    with pytest.raises(DatasetValidationError, match=message):
        dataset_to_dataframe(with_weights(dataset, [weights] * len(dataset)))


# -- refused structures ---------------------------------------------------------------------------


def test_mixed_periodicity_is_rejected_naming_the_structure(dataset: Dataset) -> None:
    slab = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab.pbc = [True, True, False]
    slab.info["name"] = "slab"
    slab.calc = SinglePointCalculator(slab, energy=-10.0, forces=np.zeros((4, 3)))
    mixed = Dataset([*dataset, *Dataset.from_atoms([slab])], source="mixed.xyz")

    with pytest.raises(DatasetValidationError) as caught:
        dataset_to_dataframe(mixed)
    error = caught.value
    assert (error.index, error.name, error.source) == (len(dataset), "slab", "mixed.xyz")
    assert str(error).startswith(f"structure {len(dataset)} 'slab' in mixed.xyz: ")
    assert "pbc=[True, True, False]" in str(error)


def test_structure_with_nan_forces_never_reaches_the_file(dataset: Dataset) -> None:
    frame = dataset_to_dataframe(dataset)
    frame.at[2, "forces"] = frame["forces"][2].copy()
    frame["forces"][2][1, 0] = np.nan

    with pytest.raises(DatasetValidationError) as caught:
        dataframe_to_dataset(frame, source="edited.pckl.gzip")
    error = caught.value
    assert (error.index, error.name) == (2, dataset[2].name)
    assert str(error).startswith(f"structure 2 '{dataset[2].name}' in edited.pckl.gzip: ")
    assert "forces contain NaN or inf (atoms [1])" in str(error)


def test_dataframe_without_a_required_column_is_rejected(dataset: Dataset) -> None:
    frame = dataset_to_dataframe(dataset).drop(columns=["forces"])
    with pytest.raises(DatasetValidationError, match="no 'forces' column"):
        dataframe_to_dataset(frame, source="old.pckl.gzip")


# -- the file -------------------------------------------------------------------------------------


def test_file_is_gzip_level_one_and_readable_by_pandas(dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "train.pckl.gzip"
    frame = dataset_to_dataframe(dataset, REFERENCE)
    write_data_file(frame, path)

    raw = path.read_bytes()
    assert raw[:2] == b"\x1f\x8b"  # gzip magic
    assert raw[8] == 4  # gzip header XFL: 4 = fastest compression (level 1)
    with gzip.open(path) as stream:
        assert len(stream.read()) > len(raw)
    read = pd.read_pickle(path, compression="gzip")
    pd.testing.assert_frame_equal(read, frame, check_exact=True, check_like=False)


@pytest.mark.requires_pacemaker
def test_file_is_readable_by_pacemakers_reader(dataset: Dataset, tmp_path: Path) -> None:
    from pyace import preparedata

    path = tmp_path / "train.pckl.gzip"
    write_data_file(dataset_to_dataframe(dataset, REFERENCE), path)

    frame = preparedata.load_dataframe(str(path))
    assert list(frame["name"]) == [s.name for s in dataset]
    assert np.array_equal(frame["forces"][1], dataset[1].forces)


def test_read_accepts_pandas_default_gzip_level(dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "level9.pckl.gzip"
    frame = dataset_to_dataframe(dataset)
    frame.to_pickle(path, compression="gzip")
    assert path.read_bytes()[8] == 2  # XFL 2: best compression
    pd.testing.assert_frame_equal(read_data_file(path), frame)


def test_write_replaces_an_existing_file_and_leaves_no_temporary(
    dataset: Dataset, tmp_path: Path
) -> None:
    path = tmp_path / "sub" / "train.pckl.gzip"
    write_data_file(dataset_to_dataframe(dataset[:2]), path)
    write_data_file(dataset_to_dataframe(dataset), path)

    assert len(read_data_file(path)) == len(dataset)
    assert [p.name for p in path.parent.iterdir()] == ["train.pckl.gzip"]


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "train.pckl.gzip"

    class Unpicklable:
        def __reduce__(self) -> str:
            raise TypeError("cannot pickle this")

    frame = pd.DataFrame({"name": ["x"], "thing": [Unpicklable()]})
    with pytest.raises(TypeError, match="cannot pickle this"):
        write_data_file(frame, path)
    assert list(tmp_path.iterdir()) == []


def test_reading_a_pickle_that_is_no_dataframe_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "series.pckl.gzip"
    pd.Series([1, 2]).to_pickle(path, compression="gzip")
    with pytest.raises(DatasetValidationError) as caught:
        read_data_file(path)
    assert str(caught.value) == f"in {path}: is not a pandas DataFrame"
