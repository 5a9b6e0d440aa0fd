"""The identity of a structure, without its labels: what a label cache is keyed by."""

from __future__ import annotations

import hashlib

import numpy as np
from ase import Atoms


def structure_hash(atoms: Atoms) -> str:
    """SHA-256 (hex) of the atomic numbers, positions (Å), cell (Å) and pbc of ``atoms``.

    Labels, velocities and ``info`` do not count: two copies of a structure hash alike whatever
    they carry. Positions count to the last bit, so a structure must travel between processes
    in a lossless form (JSON floats or binary arrays, not extxyz's 8 decimals) to keep its hash.
    """
    digest = hashlib.sha256()
    for array in (
        np.asarray(atoms.numbers, dtype=np.int64),
        np.asarray(atoms.positions, dtype=np.float64),
        np.asarray(atoms.cell, dtype=np.float64),
        np.asarray(atoms.pbc, dtype=np.bool_),
    ):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
