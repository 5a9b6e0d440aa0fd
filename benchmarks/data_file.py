"""Time the path of training data to pacemaker's data file and back, for a large dataset.

Usage: python benchmarks/data_file.py --structures 20000 --atoms 32

Structures are rattled fcc Cu supercells with random labels (no calculator: building the data
must not dominate). Reported: Dataset construction (with validation), its parts (neighbour-list
check, everything else), conversion to pacemaker's DataFrame, writing it (gzip level 1, and
pandas' default level 9 for comparison), file sizes, reading it back, and peak memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.domain_models import dataset as dataset_module
from mlip_autopipec.domain_models.dataset import Dataset, LabelledStructure
from mlip_autopipec.infrastructure.pacemaker.data_file import (
    GZIP_LEVEL,
    dataframe_to_dataset,
    dataset_to_dataframe,
    read_data_file,
    write_data_file,
)


@contextmanager
def timed(label: str, results: dict[str, float]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    results[label] = time.perf_counter() - start
    print(f"{label:<48s} {results[label]:8.2f} s", flush=True)


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def supercell_repeats(n_atoms: int) -> tuple[int, int, int]:
    """Repeats of the 4-atom cubic fcc cell giving ``n_atoms`` atoms (a multiple of 4)."""
    if n_atoms % 4:
        raise SystemExit(f"--atoms must be a multiple of 4 (fcc cubic cell), got {n_atoms}")
    cells = n_atoms // 4
    repeats = [1, 1, 1]
    axis = 0
    while np.prod(repeats) < cells:
        repeats[axis] *= 2
        axis = (axis + 1) % 3
    if np.prod(repeats) != cells:
        raise SystemExit(f"--atoms must be 4 * 2^k (4, 8, 16, 32, 64 ...), got {n_atoms}")
    return (repeats[0], repeats[1], repeats[2])


def random_structures(count: int, n_atoms: int, seed: int) -> list[LabelledStructure]:
    """Rattled, strained fcc Cu-Pt supercells with random energies (eV) and forces (eV/Å)."""
    rng = np.random.default_rng(seed)
    template = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(supercell_repeats(n_atoms))
    structures = []
    for index in range(count):
        atoms = Atoms(
            numbers=template.numbers.copy(),
            positions=template.positions + rng.normal(0.0, 0.08, (n_atoms, 3)),
            cell=template.cell.array * (1.0 + rng.uniform(-0.03, 0.03)),
            pbc=True,
        )
        atoms.numbers[rng.random(n_atoms) < 0.25] = 78  # Pt
        structures.append(
            LabelledStructure(
                atoms=atoms,
                energy=float(-3.7 * n_atoms + rng.normal(0.0, 1.0)),
                forces=rng.normal(0.0, 0.5, (n_atoms, 3)),
                name=f"random/{index}",
            )
        )
    return structures


def time_close_atoms_check(structures: list[LabelledStructure]) -> float:
    """Seconds spent in the neighbour-list check alone (the part of validation that scales)."""
    check: Callable[..., None] = dataset_module._check_close_atoms

    def fail(reason: str) -> Exception:
        return RuntimeError(reason)

    start = time.perf_counter()
    for structure in structures:
        check(structure.atoms, fail)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=int, default=20000, help="number of structures")
    parser.add_argument("--atoms", type=int, default=32, help="atoms per structure (4 * 2^k)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-level9", action="store_true", help="skip the (slow) pandas default gzip level 9"
    )
    args = parser.parse_args(argv)

    results: dict[str, float] = {}
    print(f"{args.structures} structures x {args.atoms} atoms", flush=True)
    with timed("generate structures (not part of the pipeline)", results):
        structures = random_structures(args.structures, args.atoms, args.seed)
    with timed("Dataset(...) incl. validation", results):
        dataset = Dataset(structures, source="benchmark")
    close_atoms = time_close_atoms_check(structures)
    print(
        f"{'  of which neighbour-list check (re-timed)':<48s} {close_atoms:8.2f} s "
        f"({1e3 * close_atoms / len(structures):.2f} ms/structure)"
    )
    reference = {"Cu": -3.7, "Pt": -5.9}
    with timed("dataset_to_dataframe", results):
        frame = dataset_to_dataframe(dataset, reference)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "train.pckl.gzip"
        with timed(f"write_data_file (gzip level {GZIP_LEVEL})", results):
            write_data_file(frame, path)
        size = path.stat().st_size
        with timed("read_data_file", results):
            read = read_data_file(path)
        with timed("dataframe_to_dataset (incl. validation)", results):
            back = dataframe_to_dataset(read, source=path)
        assert back.fingerprint() == dataset.fingerprint(), "round trip changed the data"
        size_9 = None
        if not args.skip_level9:
            path_9 = Path(directory) / "train_level9.pckl.gzip"
            with timed("to_pickle, pandas default gzip (level 9)", results):
                frame.to_pickle(path_9, compression="gzip")
            size_9 = path_9.stat().st_size
    print(f"{'file size, gzip level 1':<48s} {size / 2**20:8.1f} MiB")
    if size_9 is not None:
        print(f"{'file size, gzip level 9':<48s} {size_9 / 2**20:8.1f} MiB")
    print(f"{'peak memory (ru_maxrss)':<48s} {peak_memory_mb():8.0f} MiB")


if __name__ == "__main__":
    main()
