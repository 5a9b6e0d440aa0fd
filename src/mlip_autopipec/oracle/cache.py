"""The label cache: one small JSON file per structure and oracle, so that no label is paid twice.

``<cache_dir>/<oracle identity>/<hash[:2]>/<hash>.json`` holds either the labels (energy in eV,
forces in eV/Å) or the reason the oracle failed on the structure. Each file is written to a
temporary name and renamed (``files.atomic_path``), so a process killed at any moment leaves
either the whole entry or none; an entry that cannot be read (cut short by a crash of the
machine, edited by hand) counts as missing and is computed again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlip_autopipec.files import write_text_atomic

log = logging.getLogger(__name__)

#: Scratch folders of the calculations, inside the oracle's cache folder.
SCRATCH_DIR = "scratch"


class StructurePayload(BaseModel):
    """A structure as it travels to a worker or a batch job: lossless JSON floats (Å)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hash: str = Field(description="structure_hash of the structure")
    numbers: list[int] = Field(description="atomic numbers")
    positions: list[list[float]] = Field(description="Å, N x 3")
    cell: list[list[float]] = Field(description="Å, 3 x 3")
    pbc: list[bool] = Field(description="periodic in x, y, z")

    @classmethod
    def of(cls, atoms: Atoms, structure_hash: str) -> StructurePayload:
        return cls(
            hash=structure_hash,
            numbers=[int(n) for n in atoms.numbers],
            positions=np.asarray(atoms.positions, dtype=float).tolist(),
            cell=np.asarray(atoms.cell, dtype=float).tolist(),
            pbc=[bool(p) for p in atoms.pbc],
        )

    def atoms(self) -> Atoms:
        return Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)


class CacheEntry(BaseModel):
    """What the oracle gave for one structure: labels, or the reason it failed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hash: str = Field(description="structure_hash of the structure")
    status: Literal["ok", "failed"]
    n_atoms: int
    energy: float | None = Field(None, description="eV, total energy")
    forces: list[list[float]] | None = Field(None, description="eV/Å, N x 3")
    stress: list[float] | None = Field(None, description="eV/Å^3, Voigt order, if computed")
    reason: str | None = Field(None, description="why the oracle failed on the structure")
    seconds: float = Field(description="s of wall time the calculation took")

    @model_validator(mode="after")
    def _complete(self) -> CacheEntry:
        if self.status == "ok":
            if self.energy is None or self.forces is None:
                raise ValueError("a labelled entry needs its energy and forces")
            forces = np.asarray(self.forces, dtype=float)
            if forces.shape != (self.n_atoms, 3) or not np.isfinite(forces).all():
                raise ValueError("forces are not finite N x 3")
            if not np.isfinite(self.energy):
                raise ValueError("energy is not finite")
        elif not self.reason:
            raise ValueError("a failed entry needs its reason")
        return self


class LabelCache:
    """The cache folder of one oracle (``cache_dir / identity``)."""

    def __init__(self, cache_dir: Path, identity: str) -> None:
        self.root = Path(cache_dir).absolute() / identity

    def path(self, structure_hash: str) -> Path:
        return self.root / structure_hash[:2] / f"{structure_hash}.json"

    def scratch(self, structure_hash: str) -> Path:
        """The folder a calculation of this structure works in."""
        return self.root / SCRATCH_DIR / structure_hash

    def get(self, structure_hash: str) -> CacheEntry | None:
        """The entry of a structure; None if there is none or it is unreadable."""
        path = self.path(structure_hash)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            entry = CacheEntry.model_validate_json(text)
        except ValidationError as error:
            log.warning("ignoring the unreadable label cache entry %s (%s)", path, error)
            return None
        if entry.hash != structure_hash:
            log.warning("ignoring the label cache entry %s: it is of another structure", path)
            return None
        return entry

    def put(self, entry: CacheEntry) -> Path:
        path = self.path(entry.hash)
        write_text_atomic(path, entry.model_dump_json() + "\n")
        return path
