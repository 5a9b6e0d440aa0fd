"""ASE's EMT as a stand-in for a DFT oracle: fast, deterministic labels for demos and tests."""

from __future__ import annotations

from collections.abc import Iterable

from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.domain_models.dataset import Dataset


def label_with_emt(images: Iterable[Atoms], *, source: str = "EMT") -> Dataset:
    """Compute EMT energies (eV) and forces (eV/Å) and return them as a labelled Dataset.

    EMT knows Al, Cu, Ag, Au, Ni, Pd and Pt (and, roughly, H, C, N, O).
    """
    labelled = []
    for atoms in images:
        atoms = atoms.copy()
        atoms.calc = EMT()
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        labelled.append(atoms)
    return Dataset.from_atoms(labelled, source=source)
