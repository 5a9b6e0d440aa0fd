"""A fast reader of the common extended XYZ file: the same structures as ASE's reader, in bulk.

ASE's reader parses each atom line in Python and each comment line character by character
(about 1 ms per 32-atom structure). This one parses the comment line with one regular
expression, converts its values as ASE does, and the atom lines of many frames at once with
numpy. It reads only what it knows to read as ASE does; anything else (VEC lines, string or
logical columns besides the species, escaped or bracketed values, ...) raises
:class:`NotCommonExtxyz`, and the caller reads the file with ASE instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_properties
from ase.data import atomic_numbers, chemical_symbols

if TYPE_CHECKING:
    from mlip_autopipec.domain_models.dataset import LabelledStructure

# ASE's conventions (ase.io.extxyz; the tests check that they are still ASE's). Importing
# ase.io would cost a second of every run that reads no other format.
#: Property names of the file and the names of ASE's arrays.
REV_PROPERTY_NAME_MAP = {
    "pos": "positions",
    "Z": "numbers",
    "charge": "charges",
    "species": "symbols",
}
#: Comment values that are 3x3 matrices (9 numbers in Fortran order).
SPECIAL_3_3_KEYS = {"Lattice", "virial", "stress"}
#: Comment values kept as strings.
UNPROCESSED_KEYS = {"uid"}
#: Comment values that ASE puts into a calculator's results.
PER_CONFIG_PROPERTIES = (
    "energy",
    "free_energy",
    "stress",
    "dipole",
    "magmom",
    "polarization",
    "dielectric_tensor",
)

#: Frames whose atom lines are parsed together (bounds the memory of one batch).
_BATCH_FRAMES = 2000
#: Characters that make ASE's comment parser do more than split ``key=value`` pairs.
_SPECIAL = re.compile(r"[\\'{}\[\]]")
#: One ``key=value``, ``key="quoted value"`` or bare ``key`` (which means key=T).
_PAIR = re.compile(r'\s*([^\s="]+)(?:=(?:"([^"]*)"|([^\s="]+)))?(?=\s|$)')
#: The first word of each line (the species or Z column).
_FIRST_WORD = re.compile(r"^[ \t]*(\S+)", re.MULTILINE)
_PARTS = re.compile(r"[^\s,]+")
#: A whole number that fits into 64 bits, and a plain decimal number.
_INTEGER = re.compile(r"[+-]?\d{1,18}")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE_FALSE = {
    "T": True,
    "F": False,
    "true": True,
    "false": False,
    "True": True,
    "False": False,
    "TRUE": True,
    "FALSE": False,
}


class NotCommonExtxyz(Exception):
    """The file holds something this reader leaves to ASE."""


def read_frames(path: Path) -> Iterator[tuple[Atoms, dict[str, Any]]]:
    """Each frame of the extxyz file ``path`` as ASE reads it: the Atoms (cell, pbc, info and
    the per-atom arrays ASE keeps there) and the results ASE would put into a
    SinglePointCalculator (energy, forces, stress, ...), which are left out of the Atoms.

    Raises NotCommonExtxyz at the first thing it leaves to ASE, a malformed file included
    (frames already yielded are then to be discarded)."""
    with path.open() as handle:
        batch: list[tuple[int, str, list[str]]] = []
        for frame in _raw_frames(handle):
            batch.append(frame)
            if len(batch) == _BATCH_FRAMES:
                yield from _parse_batch(batch)
                batch = []
        if batch:
            yield from _parse_batch(batch)


def _raw_frames(handle: Any) -> Iterator[tuple[int, str, list[str]]]:
    """(number of atoms, comment line, atom lines) of each frame, until a blank line."""
    lines = iter(handle)
    for header in lines:
        if not header.strip():
            return
        try:
            n_atoms = int(header)
        except ValueError as error:  # VEC lines, or a malformed file: ASE says which
            raise NotCommonExtxyz(f"not a number of atoms: {header.strip()!r}") from error
        comment = next(lines, None)
        atom_lines = [line for _, line in zip(range(n_atoms), lines, strict=False)]
        if comment is None or len(atom_lines) != n_atoms:
            raise NotCommonExtxyz(f"a frame has fewer than the {n_atoms} atoms it says")
        yield n_atoms, comment, atom_lines


def parse_comment(line: str) -> dict[str, Any]:
    """The key=value pairs of a comment line, converted as ASE's ``key_val_str_to_dict``
    converts them; NotCommonExtxyz for escapes, other quotes or brackets."""
    line = line.strip()
    if _SPECIAL.search(line):
        raise NotCommonExtxyz("escaped, single-quoted or bracketed values")
    info: dict[str, Any] = {}
    position = 0
    while position < len(line):
        match = _PAIR.match(line, position)
        if match is None:
            raise NotCommonExtxyz(f"comment line not as key=value pairs: {line!r}")
        key, quoted, plain = match.groups()
        value = quoted if quoted is not None else plain if plain is not None else "T"
        info[key] = _converted(key, value)
        position = match.end()
        while position < len(line) and line[position].isspace():
            position += 1
    return info


def _converted(key: str, value: str) -> Any:
    """A comment value as ASE converts it: ints, floats, their arrays, 3x3 matrices of
    SPECIAL_3_3_KEYS, booleans, JSON; else the string."""
    if key.lower() in UNPROCESSED_KEYS:
        return value
    parts = _PARTS.findall(value)
    if all(_FLOAT.fullmatch(part) for part in parts) and parts:
        # Plain decimal numbers, which Python converts as numpy does, without its exceptions.
        integer = all(_INTEGER.fullmatch(part) for part in parts)
        if key in SPECIAL_3_3_KEYS and len(parts) != 9:
            raise NotCommonExtxyz(f"{key} is not 9 numbers")
        if len(parts) == 1:
            return np.int64(int(parts[0])) if integer else np.float64(float(parts[0]))
        plain: Any = np.array([int(p) if integer else float(p) for p in parts])
        return plain.reshape((3, 3), order="F") if key in SPECIAL_3_3_KEYS else plain
    converted: Any = value
    try:
        try:
            number = np.array(parts, dtype=int)
        except (ValueError, OverflowError):
            number = np.array(parts, dtype=float)
        converted = number[0] if len(number) == 1 else number
    except (ValueError, OverflowError):
        pass
    if key in SPECIAL_3_3_KEYS:
        if not isinstance(converted, np.ndarray) or converted.shape != (9,):
            raise NotCommonExtxyz(f"{key} is not 9 numbers")
        converted = np.array(converted).reshape((3, 3), order="F")
    if isinstance(converted, str):
        try:
            flags = [_TRUE_FALSE[part] for part in parts]
            converted = flags[0] if len(flags) == 1 else flags
        except KeyError:
            if converted.startswith("_JSON "):
                loaded = json.loads(converted.replace("_JSON ", "", 1))
                array = np.array(loaded)
                converted = array if array.dtype.kind in "ifb" else loaded
    return converted


def _columns(properties: str) -> list[tuple[str, str, int]]:
    """(ASE's name, type, columns) of each property; NotCommonExtxyz unless the species (or
    Z) and positions are there and every other column holds numbers."""
    fields = properties.split(":")
    if len(fields) % 3:
        raise NotCommonExtxyz(f"Properties={properties}")
    columns = []
    for name, kind, count in zip(fields[::3], fields[1::3], fields[2::3], strict=True):
        ase_name = REV_PROPERTY_NAME_MAP.get(name, name)
        known = (ase_name, kind) in (("symbols", "S"), ("numbers", "I"))
        if not (known or kind in ("R", "I")) or not count.isdigit():
            raise NotCommonExtxyz(f"Properties={properties}")
        columns.append((ase_name, kind, int(count)))
    names = [name for name, _, _ in columns]
    if names.count("positions") != 1 or names.count("symbols") + names.count("numbers") != 1:
        raise NotCommonExtxyz(f"Properties={properties}")
    if ("positions", "R", 3) not in columns or names[0] not in ("symbols", "numbers"):
        raise NotCommonExtxyz(f"Properties={properties}")
    return columns


def _parse_batch(
    batch: list[tuple[int, str, list[str]]],
) -> Iterator[tuple[Atoms, dict[str, Any]]]:
    """The frames of a batch; their atom lines are parsed by groups of equal Properties."""
    infos = [parse_comment(comment) if comment.strip() else {} for _, comment, _ in batch]
    layouts = [str(info.pop("Properties", "species:S:1:pos:R:3")) for info in infos]
    tables: dict[str, tuple[np.ndarray, np.ndarray, list[tuple[str, str, int]]]] = {}
    for layout in set(layouts):
        lines = [
            line
            for (_, _, a), own in zip(batch, layouts, strict=True)
            if own == layout
            for line in a
        ]
        tables[layout] = _atom_table(lines, _columns(layout))
    offsets = dict.fromkeys(tables, 0)
    for (n_atoms, _, _), info, layout in zip(batch, infos, layouts, strict=True):
        species, values, columns = tables[layout]
        start = offsets[layout]
        offsets[layout] = start + n_atoms
        yield _frame(
            info, species[start : start + n_atoms], values[start : start + n_atoms], columns
        )


def _atom_table(
    lines: list[str], columns: list[tuple[str, str, int]]
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str, int]]]:
    """The atomic numbers (from the species or Z column) and the numbers of the other
    columns, of all ``lines``: a few passes of compiled code over their joined text."""
    width = sum(count for _, _, count in columns)
    text = "".join(lines)
    heads = _FIRST_WORD.findall(text)
    numbers_text = _FIRST_WORD.sub("", text)
    values = np.fromstring(numbers_text, sep=" ")  # C's parser: no Python object per number
    if len(heads) != len(lines) or values.size != len(lines) * (width - 1):
        raise NotCommonExtxyz("atom lines not as Properties gives")
    if values.size != len(numbers_text.split()):  # fromstring stops at a word it cannot read
        raise NotCommonExtxyz("a column holds something else than numbers")
    kinds, inverse = np.unique(np.array(heads), return_inverse=True)
    if columns[0][0] == "symbols":
        try:
            known = np.array([atomic_numbers[str(kind).capitalize()] for kind in kinds])
        except KeyError as error:
            raise NotCommonExtxyz(f"unknown element {error}") from error
    else:
        known = _integers(np.array([float(kind) for kind in kinds]))
    return known[inverse], values.reshape(len(lines), width - 1), columns


def _frame(
    info: dict[str, Any], first: np.ndarray, values: np.ndarray, columns: list[tuple[str, str, int]]
) -> tuple[Atoms, dict[str, Any]]:
    """One frame's Atoms and results, split as ASE's reader splits them."""
    pbc = info.pop("pbc", True if "Lattice" in info else None)
    lattice = info.pop("Lattice", None)
    cell = None if lattice is None else lattice.T
    arrays: dict[str, np.ndarray] = {}
    start = 0
    for name, kind, count in columns[1:]:
        block = values[:, start : start + count]
        start += count
        if kind == "I":
            block = _integers(block)
        arrays[name] = block[:, 0] if count == 1 else np.array(block)
    atoms = Atoms(numbers=first, positions=arrays.pop("positions"), cell=cell, pbc=pbc)
    atoms.info = info
    results = {name: arrays.pop(name) for name in list(arrays) if name in all_properties}
    for name, array in arrays.items():
        atoms.new_array(name, array)
    for key in PER_CONFIG_PROPERTIES:
        if key in info:
            results[key] = info.pop(key)
    stress = results.get("stress")
    if isinstance(stress, np.ndarray) and stress.shape == (3, 3):  # Voigt order, as ASE
        results["stress"] = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return atoms, results


def _integers(values: np.ndarray) -> np.ndarray:
    """Integer columns: NotCommonExtxyz unless every value is a whole number."""
    numbers = np.asarray(values, dtype=float)
    whole = numbers.astype(np.int64)
    if not np.array_equal(whole, numbers):
        raise NotCommonExtxyz("an integer column holds other numbers")
    return whole


# -- writing ------------------------------------------------------------------------------------


def file_info(structure: LabelledStructure) -> dict[str, Any]:
    """The comment line's values of a structure in the file: its info, name, weights and
    energy (eV)."""
    info = dict(structure.info)
    info["name"] = structure.name
    for key, weight in (
        ("energy_weight", structure.energy_weight),
        ("force_weight", structure.force_weight),
    ):
        if weight is not None:
            info[key] = weight
    info["energy"] = structure.energy
    return info


def for_file(structure: LabelledStructure) -> Atoms:
    """A copy of the structure with its labels in ``info`` and ``arrays``, where ASE's extxyz
    writer would put a calculator's results (the same file, one copy fewer)."""
    atoms: Atoms = structure.atoms.copy()
    atoms.info.update(file_info(structure))
    atoms.arrays["forces"] = structure.forces
    return atoms


#: One atom line as ASE writes a species ('%-2s'), positions and forces.
_ATOM_LINE = "{:<2}" + " %16.8f" * 6 + "\n"


def format_frame(atoms: Atoms, info: dict[str, Any], forces: np.ndarray) -> str | None:
    """The frame ASE's extxyz writer writes for ``atoms`` (numbers and positions only) with
    ``info`` on the comment line and ``forces`` (eV/Å) as a column, byte for byte; None when
    ``atoms`` or ``info`` hold more than that writer's common case (the caller asks ASE)."""
    if atoms.arrays.keys() != {"numbers", "positions"} or atoms.constraints:
        return None
    if forces.shape != (len(atoms), 3) or forces.dtype.kind != "f":
        return None
    pairs = []
    for key, value in [*info.items(), ("pbc", atoms.pbc)]:
        text = _info_text(value)
        if text is None:
            return None
        pairs.append(f"{_escape(key)}={_escape(text)}")
    comment = "Properties=species:S:1:pos:R:3:forces:R:3 " + " ".join(pairs)
    cell = atoms.cell.array
    if cell.any():
        lattice = " ".join(str(x) for x in np.reshape(cell.T, 9, order="F"))
        comment = f'Lattice="{lattice}" {comment}'
    # One format of all atom lines, the species written into it, and one % of all numbers.
    layout = "".join(_ATOM_LINE.format(chemical_symbols[z]) for z in atoms.numbers.tolist())
    values = np.concatenate([atoms.positions, forces], axis=1).ravel().tolist()
    return f"{len(atoms)}\n{comment}\n" + layout % tuple(values)


def _info_text(value: Any) -> str | None:
    """A comment value as ASE writes it, for strings, numbers, booleans and the periodicity;
    None for anything else."""
    if isinstance(value, (bool, np.bool_)):
        return "T" if value else "F"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"{value}"
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind == "b" and value.shape == (3,):
        return " ".join("T" if flag else "F" for flag in value)
    return None


def _escape(text: str) -> str:
    """Quoted as ASE's writer quotes a key or value."""
    if any(character in text for character in " \"'{}[]"):
        return '"' + text.replace('"', '\\"') + '"'
    return text
