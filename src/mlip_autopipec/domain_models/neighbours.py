"""One neighbour search per structure, with a compiled library (vesin), and what it tells.

Every consumer of neighbours before a fit (lone atoms, shortest distance per element pair, the
baseline's reach, the neighbour count) reads one :class:`StructureNeighbours` per structure,
found once at the trainer's cutoff and kept in a :class:`NeighbourTable` keyed by the
structure's hash. The table is saved in the run directory (``neighbours.npz``), so that a next
generation searches only its new structures.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from mlip_autopipec.files import atomic_path

if TYPE_CHECKING:
    from mlip_autopipec.domain_models.dataset import Dataset

log = logging.getLogger(__name__)

#: The run directory's file of per-structure neighbour results (numpy arrays, no pickle).
NEIGHBOURS_FILE = "neighbours.npz"
#: Format version of NEIGHBOURS_FILE; another version is ignored (searched again).
_FORMAT = 1
#: Seconds between progress lines of a long search.
_PROGRESS_EVERY_S = 5.0
#: Structures from which on the searches run on several threads, and at most how many.
_THREADED_FROM = 256
_MAX_THREADS = 8


def neighbour_pairs(
    atoms: Atoms, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every ordered pair (i, j) of atoms closer than ``cutoff`` (Å), periodic images included.

    Returns i, j, the distances (Å) and the vectors from i to j's image (Å), as ASE's
    ``neighbor_list('ijdD')`` does (each pair in both directions; an atom with its own image).
    """
    first, second, distances, vectors = _vesin_search(
        atoms, cutoff, full_list=True, quantities="ijdD"
    )
    return (
        np.asarray(first, dtype=np.intp),
        np.asarray(second, dtype=np.intp),
        distances,
        vectors,
    )


def _vesin_search(
    atoms: Atoms, cutoff: float, *, full_list: bool, quantities: str, n_threads: int = 0
) -> list[np.ndarray]:
    """vesin's neighbour list of ``atoms`` within ``cutoff`` (Å): the arrays ``quantities``
    names, in order (``n_threads`` 0: vesin's default)."""
    import vesin

    search = vesin.NeighborList(cutoff=float(cutoff), full_list=full_list, n_threads=n_threads)
    return list(
        search.compute(
            points=np.asarray(atoms.positions, dtype=np.float64),
            box=np.asarray(atoms.cell.array, dtype=np.float64),
            periodic=np.asarray(atoms.pbc, dtype=bool),
            quantities=quantities,
            copy=True,
        )
    )


def structure_hash(atoms: Atoms) -> bytes:
    """16 bytes identifying a structure's atoms exactly (numbers, positions, cell, periodicity)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(atoms.positions, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(atoms.cell.array, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(atoms.pbc, dtype=bool).tobytes())
    return digest.digest()


@dataclass(frozen=True, eq=False)
class StructureNeighbours:
    """What one structure's neighbours within the cutoff tell.

    ``n_pairs``: ordered pairs within the cutoff (each pair counted from both atoms);
    ``lonely``: atoms with no neighbour (nor image) within it; ``pair_numbers`` (k x 2, the
    smaller atomic number first) and ``pair_shortest`` (Å): the shortest distance of each
    element pair present within the cutoff.
    """

    n_pairs: int
    lonely: np.ndarray
    pair_numbers: np.ndarray
    pair_shortest: np.ndarray

    @property
    def shortest(self) -> float:
        """The shortest distance (Å) between two atoms (or images) within the cutoff; inf if
        none is."""
        return float(self.pair_shortest.min()) if len(self.pair_shortest) else float("inf")


#: Atoms up to which a search runs on one thread: on a small structure vesin's start of its
#: threads costs more than the search (32 atoms: 0.5 ms against 0.3 ms).
_ONE_THREAD_ATOMS = 2000


def summarise(atoms: Atoms, cutoff: float) -> StructureNeighbours:
    """One neighbour search of ``atoms`` within ``cutoff`` (Å), reduced to its summary.

    The search asks vesin for each pair once (a half list: i, j and the distance only), which
    takes about two thirds of the time of the full list with vectors."""
    n_atoms = len(atoms)
    first, second, distances = _vesin_search(
        atoms,
        cutoff,
        full_list=False,
        quantities="ijd",
        n_threads=1 if n_atoms <= _ONE_THREAD_ATOMS else 0,
    )
    # Each pair once: an atom has a neighbour if it is either end of a pair.
    counts = np.bincount(first, minlength=n_atoms) + np.bincount(second, minlength=n_atoms)
    lonely = np.flatnonzero(counts == 0).astype(np.int32)
    numbers = np.asarray(atoms.numbers)
    if not len(distances):
        pair_numbers = np.zeros((0, 2), dtype=np.int16)
        pair_shortest = np.zeros(0)
    elif (numbers == numbers[0]).all():
        pair_numbers = np.array([[numbers[0], numbers[0]]], dtype=np.int16)
        pair_shortest = np.array([distances.min()])
    else:
        low = np.minimum(numbers[first], numbers[second])
        high = np.maximum(numbers[first], numbers[second])
        keys, inverse = np.unique(low * 256 + high, return_inverse=True)
        pair_shortest = np.full(len(keys), np.inf)
        np.minimum.at(pair_shortest, inverse, distances)
        pair_numbers = np.stack([keys // 256, keys % 256], axis=1).astype(np.int16)
    # Ordered pairs, as ASE's neighbor_list counts them: each pair from both of its atoms.
    return StructureNeighbours(2 * len(distances), lonely, pair_numbers, pair_shortest)


class NeighbourTable:
    """Per-structure neighbour summaries at one cutoff (Å), keyed by :func:`structure_hash`;
    a structure not yet in the table is searched when first asked for."""

    def __init__(
        self, cutoff: float, entries: Mapping[bytes, StructureNeighbours] | None = None
    ) -> None:
        self.cutoff = float(cutoff)
        self._entries: dict[bytes, StructureNeighbours] = dict(entries or {})

    def __len__(self) -> int:
        return len(self._entries)

    def of(self, atoms: Atoms) -> StructureNeighbours:
        """The summary of ``atoms``, searched now if the table lacks it."""
        key = structure_hash(atoms)
        found = self._entries.get(key)
        if found is None:
            found = self._entries[key] = summarise(atoms, self.cutoff)
        return found

    def cover(
        self, structures: Iterable[Atoms], total: int | None = None
    ) -> list[StructureNeighbours]:
        """The summary of each structure, in order; those the table lacks are searched (on
        several threads when they are many), with a log line every few seconds."""
        atoms_list = list(structures)
        keys = [structure_hash(atoms) for atoms in atoms_list]
        missing = {k: a for k, a in zip(keys, atoms_list, strict=True) if k not in self._entries}
        if missing:
            self._search(missing, len(atoms_list) if total is None else total)
        return [self._entries[key] for key in keys]

    def _search(self, missing: dict[bytes, Atoms], total: int) -> None:
        """Search ``missing`` into the table. vesin's search runs without Python's lock, so
        threads search structures side by side (about 1.5 times faster on 2 cores)."""
        started = last = time.perf_counter()
        workers = _search_threads() if len(missing) >= _THREADED_FROM else 1
        with ThreadPoolExecutor(workers) as pool:
            found = pool.map(
                lambda atoms: summarise(atoms, self.cutoff), missing.values(), chunksize=64
            )
            for done, (key, summary) in enumerate(zip(missing, found, strict=True), start=1):
                self._entries[key] = summary
                now = time.perf_counter()
                if now - last > _PROGRESS_EVERY_S:
                    last = now
                    log.info(
                        "neighbours within %g Å: %d of %d structures", self.cutoff, done, total
                    )
        if time.perf_counter() - started > _PROGRESS_EVERY_S:
            log.info(
                "neighbours within %g Å of %d structures searched in %.0f s",
                self.cutoff,
                len(missing),
                time.perf_counter() - started,
            )

    def update(self, other: NeighbourTable | None) -> None:
        """Take over ``other``'s summaries (e.g. a parent run's), if found at the same cutoff."""
        if other is not None and other.cutoff == self.cutoff:
            for key, value in other._entries.items():
                self._entries.setdefault(key, value)

    def shortest_distances(
        self, structures: Iterable[Atoms], radius: float | None = None
    ) -> dict[tuple[str, str], float]:
        """Shortest distance (Å) of each element pair (symbols sorted) over ``structures``,
        closer than ``radius`` (at most the table's cutoff, the default)."""
        radius = self.cutoff if radius is None else radius
        if radius > self.cutoff:
            raise ValueError(f"radius {radius} Å beyond the table's cutoff of {self.cutoff} Å")
        best: dict[tuple[int, int], float] = {}
        for atoms in structures:
            summary = self.of(atoms)
            for (low, high), value in zip(
                summary.pair_numbers.tolist(), summary.pair_shortest.tolist(), strict=True
            ):
                if value < best.get((low, high), radius):
                    best[(low, high)] = value
        shortest: dict[tuple[str, str], float] = {}
        for (low, high), value in best.items():
            pair = sorted((chemical_symbols[low], chemical_symbols[high]))
            shortest[(pair[0], pair[1])] = value
        return shortest

    # -- the run directory's file ---------------------------------------------------------------

    def save(self, path: Path) -> Path:
        """Write the table as numpy arrays (``np.load`` reads it without pickle), atomically."""
        entries = list(self._entries.items())
        keys = np.frombuffer(b"".join(key for key, _ in entries), dtype=np.uint8)
        summaries = [summary for _, summary in entries]
        with atomic_path(path) as temporary, temporary.open("wb") as handle:
            np.savez(
                handle,
                format=np.array(_FORMAT),
                cutoff=np.array(self.cutoff),
                keys=keys.reshape(len(entries), 16),
                n_pairs=np.array([s.n_pairs for s in summaries], dtype=np.int64),
                lonely_counts=np.array([len(s.lonely) for s in summaries], dtype=np.int64),
                lonely=_concatenate([s.lonely for s in summaries], np.int32, (0,)),
                pair_counts=np.array([len(s.pair_shortest) for s in summaries], dtype=np.int64),
                pair_numbers=_concatenate([s.pair_numbers for s in summaries], np.int16, (0, 2)),
                pair_shortest=_concatenate([s.pair_shortest for s in summaries], float, (0,)),
            )
        return path

    @classmethod
    def load(cls, path: Path, cutoff: float) -> NeighbourTable | None:
        """The table saved at ``path`` if it was found at ``cutoff`` (Å); None when the file is
        missing, unreadable, of another format or another cutoff (the search is then redone)."""
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as saved:
                if int(saved["format"]) != _FORMAT or float(saved["cutoff"]) != float(cutoff):
                    return None
                arrays = {name: saved[name] for name in saved.files}
        except (OSError, ValueError, KeyError) as error:
            log.warning("%s: unreadable neighbour cache, searched again (%s)", path, error)
            return None
        if not len(arrays["keys"]):
            return cls(cutoff)
        lonely = np.split(arrays["lonely"], np.cumsum(arrays["lonely_counts"])[:-1])
        pair_splits = np.cumsum(arrays["pair_counts"])[:-1]
        numbers = np.split(arrays["pair_numbers"], pair_splits)
        shortest = np.split(arrays["pair_shortest"], pair_splits)
        entries = {
            key.tobytes(): StructureNeighbours(int(n), lone, pairs, values)
            for key, n, lone, pairs, values in zip(
                arrays["keys"], arrays["n_pairs"], lonely, numbers, shortest, strict=True
            )
        }
        return cls(cutoff, entries)


def shortest_distances(
    dataset: Dataset, search_radius: float = 6.0, neighbours: NeighbourTable | None = None
) -> dict[tuple[str, str], float]:
    """Shortest distance (Å) between atoms of each element pair (sorted symbols) in the data.

    Periodic images count. Pairs never closer than ``search_radius`` are absent. The
    structures' neighbour searches come from ``neighbours`` when it reaches that far (the
    searches it lacks are added to it), else from a new search.
    """
    if neighbours is None or neighbours.cutoff < search_radius:
        neighbours = NeighbourTable(search_radius)
    return neighbours.shortest_distances(
        (structure.atoms for structure in dataset), radius=search_radius
    )


def _search_threads() -> int:
    """Threads for the searches: the cores this process may run on, at most _MAX_THREADS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, cores))


def _concatenate(
    arrays: list[np.ndarray], dtype: type | np.dtype, empty_shape: tuple[int, ...]
) -> np.ndarray:
    if not arrays:
        return np.zeros(empty_shape, dtype=dtype)
    joined: np.ndarray = np.concatenate(arrays).astype(dtype, copy=False)
    return joined
