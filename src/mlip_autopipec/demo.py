"""The built-in example: a small Cu-Pt dataset labelled with EMT and a quick fit of it."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc111

from mlip_autopipec.config.config_model import TrainerConfig, parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.oracle.emt import label_with_emt

LATTICE_CONSTANT = {"Cu": 3.61, "Pt": 3.92}  # Å, fcc


def demo_structures(seed: int = 0) -> list[Atoms]:
    """About 100 Cu-Pt structures: strained and rattled fcc alloys, vacancies, a (111) surface
    and short-distance dimers, each with ``info['name']`` saying what it is."""
    rng = np.random.default_rng(seed)
    structures: list[Atoms] = []

    def add(atoms: Atoms, name: str) -> None:
        atoms.info["name"] = f"{name}/{len(structures)}"
        structures.append(atoms)

    for platinum_fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        for _ in range(14):
            atoms = _random_alloy(platinum_fraction, (2, 2, 1), rng)
            strain = np.eye(3) + rng.uniform(-0.05, 0.05) * np.eye(3)
            strain += rng.uniform(-0.02, 0.02, (3, 3))
            atoms.set_cell(atoms.cell @ strain, scale_atoms=True)
            atoms.rattle(rng.uniform(0.02, 0.12), seed=int(rng.integers(1 << 31)))
            add(atoms, f"bulk_Pt{platinum_fraction:.2f}")
    for _ in range(6):
        atoms = _random_alloy(rng.choice([0.0, 0.25, 0.5]), (2, 2, 2), rng)
        del atoms[int(rng.integers(len(atoms)))]
        atoms.rattle(0.05, seed=int(rng.integers(1 << 31)))
        add(atoms, "vacancy")
    for _ in range(6):
        atoms = fcc111("Cu", size=(2, 2, 4), a=LATTICE_CONSTANT["Cu"], vacuum=6.0, periodic=True)
        substituted = rng.choice(len(atoms), size=int(rng.integers(0, 5)), replace=False)
        atoms.symbols[substituted] = "Pt"
        atoms.rattle(0.05, seed=int(rng.integers(1 << 31)))
        add(atoms, "surface111")
    for pair, distance in (("CuCu", 2.2), ("CuPt", 2.3), ("PtPt", 2.4)):
        add(Atoms(pair, positions=[[0, 0, 0], [0, 0, distance]]), "dimer")
    return structures


def demo_dataset(seed: int = 0) -> Dataset:
    """The demo structures labelled with EMT."""
    return label_with_emt(demo_structures(seed), source="demo (EMT Cu-Pt)")


def demo_config() -> TrainerConfig:
    """A small, quick basis fitted for three minutes: the time budget, not maxiter, ends the fit."""
    return parse_trainer_config(
        {
            "type": "pacemaker",
            "cutoff": 5.0,
            "ace_params": {"number_of_functions_per_element": 40},
            "fit": {"time_budget": "3min", "test_size": 0.1, "display_step": 20},
        }
    )


def _random_alloy(
    platinum_fraction: float, repeat: tuple[int, int, int], rng: np.random.Generator
) -> Atoms:
    lattice = (1 - platinum_fraction) * LATTICE_CONSTANT["Cu"]
    lattice += platinum_fraction * LATTICE_CONSTANT["Pt"]
    atoms: Atoms = bulk("Cu", "fcc", a=lattice, cubic=True).repeat(repeat)
    n_platinum = round(platinum_fraction * len(atoms))
    atoms.symbols[rng.choice(len(atoms), size=n_platinum, replace=False)] = "Pt"
    return atoms
