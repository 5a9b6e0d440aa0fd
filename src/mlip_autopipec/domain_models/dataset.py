"""Labelled structures (DFT energies and forces) that a potential is trained on."""

from __future__ import annotations

import hashlib
import io
import logging
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols

from mlip_autopipec.domain_models.extxyz import (
    NotCommonExtxyz,
    file_info,
    for_file,
    format_frame,
    read_frames,
)
from mlip_autopipec.domain_models.neighbours import NeighbourTable
from mlip_autopipec.domain_models.neighbours import shortest_distances as shortest_distances
from mlip_autopipec.domain_models.validation import validate_structures
from mlip_autopipec.errors import DatasetValidationError
from mlip_autopipec.files import atomic_path

log = logging.getLogger(__name__)

#: Seconds between progress lines of a long read.
PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True, eq=False)
class LabelledStructure:
    """One structure with its reference labels.

    ``energy`` is the total energy in eV, ``forces`` the per-atom forces in eV/Å (shape N x 3).
    The optional weights scale this structure's energy and force terms in the loss, relative to
    the other structures (1 = normal weight).
    """

    atoms: Atoms
    energy: float
    forces: np.ndarray
    name: str
    energy_weight: float | None = None
    force_weight: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    def to_atoms(self) -> Atoms:
        """A copy of the structure with its labels in a SinglePointCalculator (for ASE tools)."""
        atoms: Atoms = self.atoms.copy()
        atoms.info.update(self.info)
        atoms.info["name"] = self.name
        for key, weight in (
            ("energy_weight", self.energy_weight),
            ("force_weight", self.force_weight),
        ):
            if weight is not None:
                atoms.info[key] = weight
        atoms.calc = SinglePointCalculator(atoms, energy=self.energy, forces=self.forces.copy())
        return atoms


class Dataset(Sequence[LabelledStructure]):
    """An immutable, validated collection of labelled structures.

    Every structure is checked on construction; a problem raises
    :class:`~mlip_autopipec.errors.DatasetValidationError` naming the structure by index, name
    and source file. ``neighbours``: a table of neighbour searches at the trainer's cutoff, which
    the check of close atoms fills and every later consumer reads (one search per structure);
    it travels with the dataset's subsets.
    """

    def __init__(
        self,
        structures: Iterable[LabelledStructure],
        *,
        source: str | Path | None = None,
        neighbours: NeighbourTable | None = None,
        _checked: bool = False,
    ) -> None:
        self._structures: tuple[LabelledStructure, ...] = tuple(structures)
        self.source = source
        self.neighbours = neighbours
        if not self._structures:
            where = f" ({source})" if source is not None else ""
            raise DatasetValidationError(f"the dataset is empty{where}: no structures to train on")
        if not _checked:
            validate_structures(self._structures, source=source, neighbours=neighbours)

    @classmethod
    def of_checked(
        cls,
        structures: Iterable[LabelledStructure],
        *,
        source: str | Path | None = None,
        neighbours: NeighbourTable | None = None,
    ) -> Dataset:
        """A dataset of structures taken from other datasets, hence checked already (they are
        immutable): no second validation."""
        return cls(structures, source=source, neighbours=neighbours, _checked=True)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_atoms(
        cls,
        images: Iterable[Atoms],
        *,
        source: str | Path | None = None,
        energy_key: str = "energy",
        forces_key: str = "forces",
    ) -> Dataset:
        """Build a dataset from ASE ``Atoms`` labelled in ``atoms.calc`` or ``info``/``arrays``.

        The energy is read from ``atoms.info[energy_key]``, else from the calculator's stored
        results (nothing is computed); forces likewise from ``atoms.arrays[forces_key]``. The
        name is ``atoms.info['name']``, else ``<config_type or file stem>/<index>``. Optional
        weights come from ``atoms.info['energy_weight']`` and ``atoms.info['force_weight']``.
        """
        stem = Path(source).stem if source is not None else "structure"
        structures = [
            _labelled_from_atoms(
                atoms,
                index=index,
                stem=stem,
                source=source,
                energy_key=energy_key,
                forces_key=forces_key,
            )
            for index, atoms in enumerate(images)
        ]
        return cls(structures, source=source)

    @classmethod
    def read(
        cls,
        path: str | Path,
        *,
        index: str = ":",
        format: str | None = None,
        energy_key: str = "energy",
        forces_key: str = "forces",
        neighbours: NeighbourTable | None = None,
    ) -> Dataset:
        """Read every structure of a file that ASE reads (extxyz, ASE db, OUTCAR, vasprun.xml …).

        Structures are taken one at a time from ASE's reader and kept as read (no copy), with a
        log line every few seconds on a large file. ``neighbours``: see the class.
        """
        path = Path(path)
        if not path.exists():
            raise DatasetValidationError("file does not exist", source=path)
        started = time.perf_counter()
        structures = None
        if index == ":" and format in (None, "extxyz") and path.suffix in (".xyz", ".extxyz"):
            try:  # the common extxyz file, read in bulk; anything else by ASE
                structures = _labelled(path, read_frames(path), energy_key, forces_key)
            except (NotCommonExtxyz, ValueError, TypeError, KeyError, IndexError) as reason:
                log.debug("%s: read by ASE (%s: %s)", path, type(reason).__name__, reason)
        if structures is None:
            import ase.io

            try:
                frames = ((atoms, None) for atoms in ase.io.iread(path, index=index, format=format))
                structures = _labelled(path, frames, energy_key, forces_key)
            except DatasetValidationError:
                raise
            except Exception as error:  # ASE raises many types for unreadable files
                raise DatasetValidationError(
                    f"ASE cannot read it ({type(error).__name__}: {error})", source=path
                ) from error
        dataset = cls(structures, source=path, neighbours=neighbours)
        if time.perf_counter() - started > PROGRESS_EVERY_S:
            log.info("%s: %d structures read and checked", path, len(dataset))
        return dataset

    # -- sequence protocol ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._structures)

    @overload
    def __getitem__(self, index: int) -> LabelledStructure: ...

    @overload
    def __getitem__(self, index: slice) -> Dataset: ...

    def __getitem__(self, index: int | slice) -> LabelledStructure | Dataset:
        if isinstance(index, slice):
            return Dataset.of_checked(
                self._structures[index], source=self.source, neighbours=self.neighbours
            )
        return self._structures[index]

    def __iter__(self) -> Iterator[LabelledStructure]:
        return iter(self._structures)

    def __repr__(self) -> str:
        return (
            f"Dataset({len(self)} structures, {self.n_atoms} atoms, "
            f"elements={list(self.elements)}, source={self.source})"
        )

    # -- derived properties ---------------------------------------------------------------------

    @property
    def elements(self) -> tuple[str, ...]:
        """Chemical symbols present in the data, sorted alphabetically."""
        numbers = np.unique(np.concatenate([s.atoms.numbers for s in self._structures]))
        return tuple(sorted(chemical_symbols[number] for number in numbers.tolist()))

    @property
    def n_atoms(self) -> int:
        """Total number of atoms over all structures."""
        return sum(structure.n_atoms for structure in self._structures)

    @property
    def has_weights(self) -> bool:
        return any(
            s.energy_weight is not None or s.force_weight is not None for s in self._structures
        )

    def subset(self, indices: Sequence[int]) -> Dataset:
        """The structures at ``indices``, in that order."""
        return Dataset.of_checked(
            [self._structures[i] for i in indices], source=self.source, neighbours=self.neighbours
        )

    def to_atoms(self) -> list[Atoms]:
        """Copies of all structures with their labels attached (see LabelledStructure.to_atoms)."""
        return [structure.to_atoms() for structure in self._structures]

    def write(self, path: str | Path) -> Path:
        """Write the structures with their labels to an extended XYZ file (readable by
        :meth:`read` and by any ASE tool; unlike a pickle, reading it cannot run code).

        The file is the one ASE's writer writes, byte for byte; a structure whose ``info``
        holds more than strings, numbers and booleans is written by ASE itself."""
        import ase.io

        path = Path(path)
        with warnings.catch_warnings():
            # Only scalars and arrays fit into extxyz; ASE skips the rest of atoms.info (e.g.
            # the adsorbate_info of ase.build's surfaces) with a warning per structure.
            warnings.filterwarnings("ignore", "Skipping unhashable information")
            with atomic_path(path) as temporary, temporary.open("w") as handle:
                for structure in self._structures:
                    text = format_frame(structure.atoms, file_info(structure), structure.forces)
                    if text is None:
                        buffer = io.StringIO()
                        ase.io.write(
                            buffer, for_file(structure), format="extxyz", write_results=False
                        )
                        text = buffer.getvalue()
                    handle.write(text)
        return path

    def fingerprint(self) -> str:
        """SHA-256 of the numbers, positions, cell, pbc and labels: identifies the training data."""
        digest = hashlib.sha256()
        for structure in self._structures:
            atoms = structure.atoms
            for array in (
                atoms.numbers,
                atoms.positions,
                np.asarray(atoms.cell),
                atoms.pbc,
                np.array([structure.energy]),
                structure.forces,
            ):
                digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def _labelled(
    path: Path,
    frames: Iterable[tuple[Atoms, dict[str, Any] | None]],
    energy_key: str,
    forces_key: str,
) -> list[LabelledStructure]:
    """The labelled structures of the frames read from ``path`` (each Atoms with the results
    of its calculator, or None: those of ``atoms.calc``), with a log line every few seconds."""
    structures = []
    last = time.perf_counter()
    for position, (atoms, results) in enumerate(frames):
        structures.append(
            _labelled_from_atoms(
                atoms,
                index=position,
                stem=path.stem,
                source=path,
                energy_key=energy_key,
                forces_key=forces_key,
                owned=True,
                results=results,
            )
        )
        if time.perf_counter() - last > PROGRESS_EVERY_S:
            last = time.perf_counter()
            log.info("%s: %d structures read", path, len(structures))
    return structures


def _labelled_from_atoms(
    atoms: Atoms,
    *,
    index: int,
    stem: str,
    source: str | Path | None,
    energy_key: str,
    forces_key: str,
    owned: bool = False,
    results: dict[str, Any] | None = None,
) -> LabelledStructure:
    """The labelled structure of ``atoms``; ``owned``: atoms just read, which become the
    structure's own (stripped of labels and calculator) instead of being copied. ``results``:
    the calculator's results, when they are not in ``atoms.calc``."""
    info = dict(atoms.info)
    name = str(info.pop("name", "") or f"{info.get('config_type', stem)}/{index}")

    def fail(reason: str) -> DatasetValidationError:
        return DatasetValidationError(reason, index=index, name=name, source=source)

    # The named keys win over the calculator: an extxyz file with ``REF_energy`` (asked for) and
    # ``energy`` (ASE puts it in a calculator) must give the REF labels.
    if results is None:
        results = atoms.calc.results if atoms.calc is not None else {}
    energy = info.get(energy_key, results.get("energy"))
    forces = atoms.arrays.get(forces_key, results.get("forces"))
    if energy is None:
        raise fail(
            f"no energy label: neither atoms.calc results nor atoms.info['{energy_key}'] hold one"
        )
    if forces is None:
        raise fail(
            "no forces label: neither atoms.calc results nor "
            f"atoms.arrays['{forces_key}'] hold them"
        )
    try:
        energy_value = float(np.asarray(energy).item())
    except (TypeError, ValueError) as error:
        raise fail(f"energy label is not a number: {energy!r}") from error

    info.pop(energy_key, None)
    weights: dict[str, float | None] = {}
    for key in ("energy_weight", "force_weight"):
        value = info.pop(key, None)
        try:
            weights[key] = None if value is None else float(np.asarray(value).item())
        except (TypeError, ValueError) as error:
            raise fail(f"{key} is not a number: {value!r}") from error
    try:
        forces_array = (np.asarray if owned else np.array)(forces, dtype=float)
    except (TypeError, ValueError) as error:
        raise fail(f"forces are not numbers ({error})") from error
    if owned:
        bare = atoms
        bare.calc = None
        bare.info = {}
        bare.constraints = []
        for key in [key for key in bare.arrays if key not in ("numbers", "positions")]:
            del bare.arrays[key]
    else:
        bare = Atoms(
            numbers=atoms.numbers.copy(),
            positions=atoms.positions.copy(),
            cell=atoms.cell.copy(),
            pbc=atoms.pbc.copy(),
        )
    return LabelledStructure(
        atoms=bare,
        energy=energy_value,
        forces=forces_array,
        name=name,
        energy_weight=weights["energy_weight"],
        force_weight=weights["force_weight"],
        info=info,
    )
