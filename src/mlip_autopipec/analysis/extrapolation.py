"""Extrapolation grade of structures under a trained potential (its active set)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import DatasetValidationError


@dataclass(frozen=True)
class StructureGrade:
    """The largest per-atom extrapolation grade gamma of one structure.

    gamma <= 1 (up to the active set's tolerance, 1.01 by default): every atomic environment
    lies within the span of the training set; above it the potential extrapolates
    (pacemaker's rule of thumb: reliable below ~2, unreliable above ~10).
    """

    index: int
    name: str
    n_atoms: int
    max_gamma: float
    worst_atom: int


def extrapolation_grades(potential: Potential, dataset: Dataset) -> list[StructureGrade]:
    """Per-structure maximum gamma of every structure of ``dataset`` under ``potential``.

    A structure holding an element the potential does not know is an error naming it.
    """
    known = set(potential.elements)
    for index, structure in enumerate(dataset):
        unknown = sorted(set(structure.atoms.get_chemical_symbols()) - known)
        if unknown:
            raise DatasetValidationError(
                f"holds {unknown}, which the potential (elements {list(potential.elements)}) "
                "does not know",
                index=index,
                name=structure.name,
                source=dataset.source,
            )
    calculator = potential.ase_calculator(extrapolation=True)
    grades = []
    for index, structure in enumerate(dataset):
        atoms = structure.atoms.copy()
        atoms.calc = calculator
        atoms.get_potential_energy()
        gamma = np.asarray(calculator.results["gamma"])
        grades.append(
            StructureGrade(
                index=index,
                name=structure.name,
                n_atoms=len(atoms),
                max_gamma=float(gamma.max()),
                worst_atom=int(gamma.argmax()),
            )
        )
    return grades


def format_grades(grades: Sequence[StructureGrade], threshold: float = 1.01) -> str:
    """A table of the grades, the extrapolating structures marked: those above ``threshold``,
    the active set's gamma tolerance (a training structure grades 1 up to rounding)."""
    lines = [f"{'index':>6} {'max gamma':>10} {'atom':>5} {'atoms':>6}  name"]
    for grade in grades:
        mark = "  <- extrapolates" if grade.max_gamma > threshold else ""
        lines.append(
            f"{grade.index:6d} {grade.max_gamma:10.3f} {grade.worst_atom:5d} "
            f"{grade.n_atoms:6d}  {grade.name}{mark}"
        )
    outside = sum(grade.max_gamma > threshold for grade in grades)
    lines.append(f"{outside} of {len(grades)} structures have gamma > {threshold:g}")
    return "\n".join(lines)
