"""Shared set-up of the explorer's tests."""

from __future__ import annotations

from ase import Atoms
from ase.build import bulk


def cu_pt_cell(a: float = 3.7) -> Atoms:
    """A cubic fcc Cu cell doubled along x (8 atoms, lattice constant ``a`` in Å), atoms 1 and 4
    Pt."""
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 1, 1))
    atoms.symbols[[1, 4]] = "Pt"
    return atoms
