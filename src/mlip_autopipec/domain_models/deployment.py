"""Deployment of a potential: ASE calculators (ACE plus baseline, extrapolation grade) and LAMMPS.

pyace is imported only inside the functions that build a calculator, so reading and writing the
``Potential`` record needs no pyace.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.mixing import SumCalculator
from ase.data import atomic_numbers

from mlip_autopipec.config.baseline import NoBaseline, ZBLBaseline
from mlip_autopipec.domain_models.baseline import (
    BaselineCalculator,
    PairPotential,
    lj_pair_parameters,
    pair_potential,
    zbl_pair_cutoffs,
)

if TYPE_CHECKING:
    from ase.calculators.calculator import BaseCalculator

    from mlip_autopipec.domain_models.potential import Potential


def _active_set_files(potential: Potential) -> tuple[Path, Path]:
    """The B-basis ``.yaml`` and its active set, which the extrapolation grade needs."""
    if potential.active_set_path is None or potential.yaml_path is None:
        raise ValueError(f"the potential in {potential.run_dir} has no active set (.asi)")
    return potential.yaml_path, potential.active_set_path


def ase_calculator(potential: Potential, extrapolation: bool = False) -> BaseCalculator:
    """An ASE calculator of the deployed potential: ACE (pyace), plus the baseline if any.

    Energies are total energies in eV on the scale of the training labels, forces in eV/Å.
    With ``extrapolation`` the results also hold ``gamma``, the per-atom extrapolation
    grade from the active set (above ``gamma_tolerance``: the environment lies outside the
    training set).
    """
    if potential.trainer == "mock":
        raise ValueError(
            f"{potential.yace_path} is a mock placeholder (trainer: mock), not a real potential"
        )
    baseline = pair_potential(potential.baseline, potential.elements)
    if extrapolation:
        yaml_path, active_set_path = _active_set_files(potential)
        return ExtrapolationCalculator(
            yaml_path, active_set_path, potential.reference_energies, baseline
        )
    from pyace import PyACECalculator

    ace: BaseCalculator = PyACECalculator(str(potential.yace_path))
    if baseline is None:
        return ace
    return SumCalculator([ace, BaselineCalculator(baseline)])


def lammps_commands(potential: Potential, extrapolation: bool = False) -> list[str]:
    """LAMMPS input lines for the deployed potential; atom type k is ``elements[k-1]``.

    With a baseline, ACE (ML-PACE) and the baseline are overlaid
    (``pair_style hybrid/overlay pace zbl ...`` or ``... lj/cut ...``); the ``.yace`` holds
    no ZBL of its own, so nothing is counted twice. With ``extrapolation``, ACE is
    ``pace/extrapolation`` on the B-basis ``.yaml`` and its active set, and the per-atom
    grade is kept in ``f_pace_gamma`` every 10 steps (its maximum in
    ``c_max_pace_gamma``); that ``.yaml`` holds no reference energies, so total energies
    are then shifted by the sum of ``reference_energies`` over the atoms (forces are not).
    """
    if extrapolation:
        yaml_path, active_set_path = _active_set_files(potential)
        ace_style = "pace/extrapolation"
        ace_files = f"{yaml_path} {active_set_path}"
        gamma = [
            "fix pace_gamma all pair 10 pace/extrapolation gamma 1",
            "compute max_pace_gamma all reduce max f_pace_gamma",
        ]
    else:
        ace_style, ace_files, gamma = "pace", str(potential.yace_path), []
    return _pair_commands(potential, ace_style, ace_files) + gamma


def _pair_commands(potential: Potential, ace_style: str, ace_files: str) -> list[str]:
    elements = " ".join(potential.elements)
    baseline = potential.baseline
    if isinstance(baseline, NoBaseline):
        return [f"pair_style {ace_style}", f"pair_coeff * * {ace_files} {elements}"]
    pace = f"pair_coeff * * {ace_style} {ace_files} {elements}"
    pairs = [
        (i + 1, j + 1, first, second)
        for i, first in enumerate(potential.elements)
        for j, second in enumerate(potential.elements)
        if j >= i
    ]
    if isinstance(baseline, ZBLBaseline):
        return [
            pace if line == _PACE_COEFF else line
            for line in zbl_commands(baseline, potential.elements, ace_style)
        ]
    parameters = lj_pair_parameters(baseline, potential.elements)
    lines = [f"pair_style hybrid/overlay {ace_style} lj/cut {baseline.cutoff}", pace]
    for i, j, a, b in pairs:
        epsilon, sigma = parameters[(a, b)]
        lines.append(f"pair_coeff {i} {j} lj/cut {epsilon!r} {sigma!r}")
    if baseline.shift:
        lines.append("pair_modify pair lj/cut shift yes")
    return lines


#: Placeholder for the ``pair_coeff`` line of ACE in :func:`zbl_commands`.
_PACE_COEFF = "<pace>"


def zbl_commands(baseline: ZBLBaseline, elements: Sequence[str], ace_style: str) -> list[str]:
    """``hybrid/overlay`` lines of ACE and a per-pair ZBL; ACE's ``pair_coeff`` as a placeholder.

    LAMMPS' ``pair zbl`` has one inner/outer pair per style, so each distinct pair of cutoffs is
    its own ``zbl`` sub-style (numbered in ``pair_coeff`` when there are several) holding only
    the element pairs with those cutoffs.
    """
    table = zbl_pair_cutoffs(baseline, elements)
    groups = sorted(set(table.values()), key=lambda value: (value[1], value[0]))
    styles = " ".join(f"zbl {inner} {outer}" for inner, outer in groups)
    lines = [f"pair_style hybrid/overlay {ace_style} {styles}", _PACE_COEFF]
    for i, first in enumerate(elements):
        for j in range(i, len(elements)):
            second = elements[j]
            group = groups.index(table[tuple(sorted((first, second)))])  # type: ignore[index]
            style = "zbl" if len(groups) == 1 else f"zbl {group + 1}"
            lines.append(
                f"pair_coeff {i + 1} {j + 1} {style} "
                f"{atomic_numbers[first]} {atomic_numbers[second]}"
            )
    return lines


class ExtrapolationCalculator(Calculator):
    """ACE from the B-basis ``.yaml`` with its active set, plus reference energies and baseline.

    pyace computes the extrapolation grade only from the B-basis form of a potential, which
    holds no reference energies; they are added here, so energies match ``ase_calculator()``.
    """

    implemented_properties = ["energy", "energies", "forces", "stress", "gamma"]  # noqa: RUF012

    def __init__(
        self,
        yaml_path: Path,
        active_set_path: Path,
        reference_energies: dict[str, float],
        baseline: PairPotential | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        from pyace import PyACECalculator

        self.ace = PyACECalculator(str(yaml_path))
        self.ace.set_active_set(str(active_set_path))
        self.reference_energies = reference_energies
        self.baseline = baseline

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = tuple(all_changes),
    ) -> None:
        super().calculate(atoms, properties, system_changes)  # type: ignore[no-untyped-call]
        assert self.atoms is not None  # set by Calculator.calculate
        structure = self.atoms.copy()
        self.ace.calculate(structure, properties, system_changes)
        ace = self.ace.results
        symbols = structure.get_chemical_symbols()
        offsets = np.array([self.reference_energies.get(s, 0.0) for s in symbols])
        energies = np.asarray(ace["energies"]) + offsets
        forces = np.array(ace["forces"])
        stress = np.array(ace["stress"]) if "stress" in ace else np.zeros(6)
        if self.baseline is not None:
            _, baseline_energies, baseline_forces, baseline_stress = self.baseline.evaluate(
                structure
            )
            energies = energies + baseline_energies
            forces = forces + baseline_forces
            stress = stress + baseline_stress
        energy = float(energies.sum())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": energies,
            "forces": forces,
            "gamma": np.array(ace["gamma"]),
        }
        if structure.pbc.all():
            self.results["stress"] = stress
