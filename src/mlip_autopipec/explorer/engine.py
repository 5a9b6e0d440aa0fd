"""What drives a trajectory: the forces of the MD and the grade of a frame, from the potential.

The MD runs on the deployed potential (ACE from the ``.yace``, plus the baseline); every check
grades the frame with the extrapolation calculator (the B-basis ``.yaml`` with its active set),
which gives the energy and the per-atom gamma of the same deployed potential. Both are built in
the process that runs the trajectory (pyace is imported there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms

from mlip_autopipec.domain_models.potential import Potential

if TYPE_CHECKING:
    from ase.calculators.calculator import BaseCalculator

#: ``grade(atoms)`` → (potential energy in eV, extrapolation grade gamma of each atom).
Grader = Callable[[Atoms], tuple[float, np.ndarray]]


def deployed_calculator(potential: Potential) -> BaseCalculator:
    """The deployed potential's ASE calculator (ACE plus baseline)."""
    return potential.ase_calculator()


def deployed_grader(potential: Potential) -> Grader:
    """Energy and per-atom gamma of a frame from the potential's active set."""
    calculator = potential.ase_calculator(extrapolation=True)

    def grade(atoms: Atoms) -> tuple[float, np.ndarray]:
        frame = atoms.copy()
        frame.calc = calculator
        energy = float(frame.get_potential_energy())
        return energy, np.asarray(calculator.results["gamma"], dtype=float)

    return grade


@dataclass(frozen=True)
class Engine:
    """The factories of the MD's calculator and of the grader. They are called in the worker
    process, so with ``workers > 1`` they must be importable functions (picklable)."""

    calculator: Callable[[Potential], BaseCalculator] = deployed_calculator
    grader: Callable[[Potential], Grader] = deployed_grader
