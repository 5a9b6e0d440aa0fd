"""GFN2-xTB (tblite) as a fast multi-element oracle: molecular MD frames for tests and benchmarks.

tblite is an optional dependency (the ``dev`` extra); it is imported only when used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.domain_models.dataset import Dataset


def xtb_calculator() -> object:
    """tblite's ASE calculator for GFN2-xTB, quiet."""
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", verbosity=0)


def label_with_xtb(images: Iterable[Atoms], *, source: str = "GFN2-xTB") -> Dataset:
    """GFN2-xTB energies (eV) and forces (eV/Å) as a labelled Dataset (molecules, no cell)."""
    calculator = xtb_calculator()
    labelled = []
    for atoms in images:
        atoms = atoms.copy()
        atoms.calc = calculator
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        labelled.append(atoms)
    return Dataset.from_atoms(labelled, source=source)


def md_frames(
    name: str,
    n_frames: int,
    *,
    steps_between: int = 10,
    temperature_k: float = 600.0,
    timestep_fs: float = 0.5,
    seed: int = 0,
) -> list[Atoms]:
    """Frames of a Langevin MD of the molecule ``name`` (ASE's g2 set, e.g. 'CH3CH2OH') under
    GFN2-xTB, each named ``{name}_{k}`` and labelled with its energy and forces."""
    from ase.build import molecule
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.units import fs

    rng = np.random.default_rng(seed)
    atoms = molecule(name)
    atoms.calc = xtb_calculator()
    thermalize_momenta(atoms, temperature_K=temperature_k, rng=rng)
    dynamics = Langevin(
        atoms,
        timestep_fs * fs,
        temperature_K=temperature_k,
        friction=0.02 / fs,
        fixcm=False,
        rng=rng,
    )
    frames = []
    for k in range(n_frames):
        dynamics.run(steps_between)
        frame = atoms.copy()
        frame.calc = SinglePointCalculator(
            frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces()
        )
        frame.info["name"] = f"{name}_{k}"
        frames.append(frame)
    return frames


def shorten_bond(atoms: Atoms, pair: Sequence[str], length: float) -> Atoms | None:
    """A copy with the shortest bond of element ``pair`` set to ``length`` Å, both atoms moved
    symmetrically along it (None if the structure has no such pair)."""
    symbols = np.array(atoms.get_chemical_symbols())
    first = np.flatnonzero(symbols == pair[0])
    second = np.flatnonzero(symbols == pair[1])
    candidates = [(i, j) for i in first for j in second if i != j]
    if not candidates:
        return None
    i, j = min(candidates, key=lambda ij: atoms.get_distance(*ij))
    result: Atoms = atoms.copy()
    vector = result.positions[j] - result.positions[i]
    current = float(np.linalg.norm(vector))
    shift = 0.5 * (current - length) * vector / current
    result.positions[i] += shift
    result.positions[j] -= shift
    return result
