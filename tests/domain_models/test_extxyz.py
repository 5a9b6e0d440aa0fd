"""The fast extxyz reader against ASE's: the same Atoms, info, energies and forces, and ASE's
reader for what it leaves to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.extxyz import NotCommonExtxyz, parse_comment, read_frames
from mlip_autopipec.errors import DatasetValidationError

HANDWRITTEN = """\
2
Lattice="4.0 0.0 0.0  0.0 4.0 0.0 0.0 0.0 4.0"  Properties=species:S:1:pos:R:3:REF_forces:R:3:magmoms:R:1:tags:I:1   REF_energy=-3.5e0 name="my cell 1" relaxed flag=F step=12 vec="1 2 3" small=1e-3 uid=007 pbc="T T F"
cu\t0.0   0.0 0.0    0.1 -0.2 0.3  1.5  1
Pt  1.9 2.0    2.1 -0.1 0.2 -0.3 -1.5\t2
3
Properties=Z:I:1:pos:R:3:forces:R:3 energy=-7.25 config_type=water energy_weight=2 force_weight=0.5 stress="1 2 3 2 5 6 3 6 9" virial="1 0 0 0 1 0 0 0 1"
8 0.0 0.0 0.1 0.0 0.0 1.0
1 0.0 0.76 -0.47 0.0 0.1 -0.5
1 0.0 -0.76 -0.47 0.0 -0.1 -0.5
1
Lattice="3.0 0.0 0.0 0.0 3.0 0.0 0.0 0.0 3.0" Properties=species:S:1:pos:R:3:forces:R:3 energy=-1 free_energy=-1.1 name=cu/2 weights="0.5,0.25" json="_JSON 5"
Cu 0.0 0.0 0.0 0.0 0.0 0.0
"""  # noqa: E501


def _labelled_images() -> list[Atoms]:
    """Periodic cells with energy, forces and stress, and a molecule without a Lattice."""
    images = []
    for index, atoms in enumerate(
        [
            bulk("Cu", "fcc", a=3.6, cubic=True),
            bulk("NaCl", "rocksalt", a=5.6) * (2, 1, 1),
            molecule("CH3CH2OH"),
        ]
    ):
        atoms.rattle(0.05, seed=index)
        rng = np.random.default_rng(index)
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=float(rng.normal()),
            forces=rng.normal(size=(len(atoms), 3)),
            stress=rng.normal(size=6) if atoms.pbc.all() else None,
        )
        atoms.info["name"] = f"structure number {index}"
        atoms.info["config_type"] = "bulk" if atoms.pbc.all() else "molecule"
        atoms.info["energy_weight"] = 0.5 + index
        atoms.info["temperature"] = 300
        images.append(atoms)
    return images


def _same_value(first: Any, second: Any) -> bool:
    if isinstance(second, np.ndarray):
        return (
            isinstance(first, np.ndarray)
            and first.dtype == second.dtype
            and (np.array_equal(first, second))
        )
    return type(first) is type(second) and first == second


def _assert_as_ase(path: Path) -> None:
    frames = list(read_frames(path))
    expected = ase.io.read(path, index=":")
    assert len(frames) == len(expected)
    for (atoms, results), reference in zip(frames, expected, strict=True):
        assert atoms.numbers.tolist() == reference.numbers.tolist()
        assert np.array_equal(atoms.positions, reference.positions)
        assert np.array_equal(atoms.cell.array, reference.cell.array)
        assert atoms.pbc.tolist() == reference.pbc.tolist()
        assert atoms.info.keys() == reference.info.keys()
        for key, value in reference.info.items():
            assert _same_value(atoms.info[key], value), key
        assert atoms.arrays.keys() == reference.arrays.keys()
        for key, value in reference.arrays.items():
            assert np.array_equal(atoms.arrays[key], value), key
        ase_results = {} if reference.calc is None else reference.calc.results
        assert results.keys() == ase_results.keys()
        for key, value in ase_results.items():
            assert np.array_equal(np.reshape(results[key], -1), np.reshape(value, -1)), key


def test_files_written_by_ase_are_read_as_ase_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "ase.extxyz"
    ase.io.write(path, _labelled_images(), format="extxyz")
    _assert_as_ase(path)


def test_a_handwritten_file_with_odd_spacing_quotes_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "hand.xyz"
    path.write_text(HANDWRITTEN)
    _assert_as_ase(path)


def _assert_same_datasets(fast: Dataset, by_ase: Dataset) -> None:
    assert fast.fingerprint() == by_ase.fingerprint()
    for mine, theirs in zip(fast, by_ase, strict=True):
        assert (mine.name, mine.energy, mine.energy_weight, mine.force_weight) == (
            theirs.name,
            theirs.energy,
            theirs.energy_weight,
            theirs.force_weight,
        )
        assert mine.info.keys() == theirs.info.keys()
        assert all(_same_value(mine.info[k], v) for k, v in theirs.info.items())


def test_datasets_are_the_same_by_either_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.extxyz"
    ase.io.write(path, _labelled_images(), format="extxyz")
    by_ase = Dataset.from_atoms(ase.io.read(path, index=":"), source=path)
    monkeypatch.setattr(ase.io, "iread", None)  # the fast reader alone
    _assert_same_datasets(Dataset.read(path), by_ase)


def test_labels_under_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "hand.xyz"
    path.write_text(HANDWRITTEN.split("3\nProperties=Z")[0])
    dataset = Dataset.read(path, energy_key="REF_energy", forces_key="REF_forces")

    assert dataset[0].energy == -3.5
    assert dataset[0].forces.tolist() == [[0.1, -0.2, 0.3], [-0.1, 0.2, -0.3]]
    assert dataset[0].name == "my cell 1"
    assert dataset[0].atoms.pbc.tolist() == [True, True, False]


@pytest.mark.parametrize(
    "text",
    [
        # A logical column (ASE makes constraints of move_mask).
        "1\nProperties=species:S:1:pos:R:3:forces:R:3:move_mask:L:1 energy=1.5\n"
        "Cu 0 0 0 0.1 0 0 T\n",
        # An escaped quote, and a value in braces.
        '1\nenergy=1.5 name="a \\"b\\"" Properties=species:S:1:pos:R:3:forces:R:3\n'
        "Cu 0 0 0 0.1 0 0\n",
        "1\nenergy=1.5 tag={a b} Properties=species:S:1:pos:R:3:forces:R:3\nCu 0 0 0 0.1 0 0\n",
        # An element ASE does not know either: its error.
        "1\nenergy=1.5 Properties=species:S:1:pos:R:3:forces:R:3\nXx 0 0 0 0.1 0 0\n",
    ],
    ids=["logical column", "escaped quote", "braces", "unknown element"],
)
def test_what_it_leaves_to_ase_is_read_by_ase(tmp_path: Path, text: str) -> None:
    path = tmp_path / "unusual.xyz"
    path.write_text(text)
    with pytest.raises(NotCommonExtxyz):
        list(read_frames(path))

    if "Xx" in text:
        with pytest.raises(DatasetValidationError, match="ASE cannot read it"):
            Dataset.read(path)
        return
    by_ase = Dataset.from_atoms(ase.io.read(path, index=":"), source=path)
    _assert_same_datasets(Dataset.read(path), by_ase)


def test_a_cell_in_vec_lines_is_left_to_ase(tmp_path: Path) -> None:
    path = tmp_path / "vec.xyz"
    path.write_text("1\nenergy=1.5\nCu 0 0 0\nVEC1 3.0 0.0 0.0\n")
    with pytest.raises(NotCommonExtxyz):
        list(read_frames(path))
    # ASE takes such a comment line as a comment: no labels.
    with pytest.raises(DatasetValidationError, match="no energy label"):
        Dataset.read(path)


def test_comment_values_convert_as_in_ase() -> None:
    from ase.io.extxyz import key_val_str_to_dict

    line = (
        'a=1 b=-2.5 c="1 2 3" d="1.0 2 3" e=T f="T F T" g=true h=x1 i=1e5 j=+.5 k '
        'Lattice="1 0 0 0 1 0 0 0 1" stress="1 2 3 4 5 6 7 8 9" uid=0012 l=99999999999999999999 '
        'm="a, b" n=nan o=1,2,3'
    )
    mine, theirs = parse_comment(line), key_val_str_to_dict(line)

    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        if isinstance(value, float) and np.isnan(value):
            assert np.isnan(mine[key])
        else:
            assert _same_value(mine[key], value), key


def _varied_dataset() -> Dataset:
    images = _labelled_images()
    images[0].info.update(
        {"quoted": 'say "hi"', "flag": True, "count": np.int64(3), "empty": "", "x": 1e-20}
    )
    images[1].info["force_weight"] = 2
    slab = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab.pbc = [True, True, False]
    slab.positions[0] += [1.0e8, 0.0, -2.5e7]  # wider than the column
    slab.calc = SinglePointCalculator(slab, energy=-1.0, forces=np.full((4, 3), -1e9))
    images.append(slab)
    return Dataset.from_atoms(images)


def test_the_written_file_is_the_one_ase_writes(tmp_path: Path) -> None:
    from mlip_autopipec.domain_models.extxyz import file_info, for_file, format_frame

    dataset = _varied_dataset()
    assert all(format_frame(s.atoms, file_info(s), s.forces) is not None for s in dataset)
    ours = dataset.write(tmp_path / "ours.extxyz")
    theirs = tmp_path / "theirs.extxyz"
    ase.io.write(theirs, [for_file(s) for s in dataset], format="extxyz", write_results=False)

    assert ours.read_bytes() == theirs.read_bytes()
    _assert_same_datasets(Dataset.read(ours), Dataset.from_atoms(ase.io.read(theirs, ":")))


def test_info_beyond_numbers_and_strings_is_written_by_ase(tmp_path: Path) -> None:
    from mlip_autopipec.domain_models.extxyz import for_file, format_frame

    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((1, 3)))
    atoms.info["vector"] = np.array([1.0, 2.0])
    atoms.info["nothing"] = None
    dataset = Dataset.from_atoms([atoms])
    structure = dataset[0]
    assert format_frame(structure.atoms, dict(structure.info), structure.forces) is None
    ours = dataset.write(tmp_path / "ours.extxyz")
    theirs = tmp_path / "theirs.extxyz"
    ase.io.write(theirs, [for_file(structure)], format="extxyz", write_results=False)

    assert ours.read_bytes() == theirs.read_bytes()


def test_the_conventions_are_those_of_ase() -> None:
    from ase.io import extxyz

    from mlip_autopipec.domain_models import extxyz as ours

    assert ours.REV_PROPERTY_NAME_MAP == extxyz.REV_PROPERTY_NAME_MAP
    assert set(ours.SPECIAL_3_3_KEYS) == set(extxyz.SPECIAL_3_3_KEYS)
    assert set(ours.UNPROCESSED_KEYS) == set(extxyz.UNPROCESSED_KEYS)
    assert list(ours.PER_CONFIG_PROPERTIES) == list(extxyz.per_config_properties)
