"""A trained potential: its files, what it was trained on and how well it fits."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.mixing import SumCalculator
from ase.data import atomic_numbers
from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.analysis.dimers import DimerCheck
from mlip_autopipec.analysis.safety import CompressionCheck
from mlip_autopipec.config.config_model import Baseline, NoBaseline, ZBLBaseline
from mlip_autopipec.domain_models.baseline import (
    BaselineCalculator,
    PairPotential,
    lj_pair_parameters,
    pair_potential,
    zbl_pair_cutoffs,
)
from mlip_autopipec.domain_models.fit_stop import FitStop
from mlip_autopipec.files import write_text_atomic

if TYPE_CHECKING:
    from ase.calculators.calculator import BaseCalculator

#: Name of the record that sits beside a potential's files.
POTENTIAL_JSON = "potential.json"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FitMetrics(_Record):
    """Errors of a potential on one set of structures (energies per atom, force components)."""

    energy_rmse_mev_per_atom: float
    energy_mae_mev_per_atom: float
    force_rmse_mev_per_angstrom: float
    force_mae_mev_per_angstrom: float
    n_structures: int | None = None


def rmse_mae_mev(error_ev: np.ndarray) -> tuple[float, float]:
    """RMSE and MAE in meV (per atom, per Å) of errors given in eV (per atom, per Å)."""
    error = np.asarray(error_ev, dtype=float).ravel()
    return 1000 * float(np.sqrt(np.mean(error**2))), 1000 * float(np.mean(np.abs(error)))


def metrics_from_errors(
    energy_error_ev_per_atom: np.ndarray, force_error_ev_per_angstrom: np.ndarray
) -> FitMetrics:
    """RMSE and MAE in meV/atom and meV/Å from per-structure and per-component errors in eV."""
    energy_rmse, energy_mae = rmse_mae_mev(energy_error_ev_per_atom)
    force_rmse, force_mae = rmse_mae_mev(force_error_ev_per_angstrom)
    return FitMetrics(
        energy_rmse_mev_per_atom=energy_rmse,
        energy_mae_mev_per_atom=energy_mae,
        force_rmse_mev_per_angstrom=force_rmse,
        force_mae_mev_per_angstrom=force_mae,
        n_structures=len(np.asarray(energy_error_ev_per_atom)),
    )


class Selection(_Record):
    """Which structures of the dataset a potential was trained on, after D-optimal selection."""

    method: str
    n_selected: int
    n_total: int
    indices: tuple[int, ...] = Field(description="positions in the dataset, in selection order")
    names: tuple[str, ...]
    file: str = Field(description="the selection's record in the run directory")
    n_atoms: int | None = Field(None, description="atoms in the selected structures")


class FitCost(_Record):
    """What a fit cost: estimated before it started and measured (s of wall time)."""

    estimated_s_per_iteration: float
    estimated_iterations: int = Field(description="iterations planned (the budget's share)")
    estimated_total_s: float = Field(description="start-up, iterations and finishing")
    estimated_startup_s: float | None = Field(None, description="before the first iteration")
    time_budget_s: float | None = Field(None, description="fit.time_budget; None: no budget")
    s_per_iteration: float | None = Field(None, description="measured, from pacemaker's log")
    iterations: int | None = Field(None, description="iterations the fit ran")
    startup_s: float | None = Field(None, description="measured, before the first iteration")
    fit_s: float | None = Field(None, description="wall time of the pacemaker run")
    stopped_at_budget: bool = Field(False, description="the fit was ended by the time budget")
    still_improving: str | None = Field(
        None, description="set when the test loss was still falling at the end: by how much"
    )


class Provenance(_Record):
    """Where a potential came from: enough to tell two potentials apart and to reproduce one."""

    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    tool_versions: dict[str, str] = Field(default_factory=dict)
    data_sha256: str | None = Field(description="hash of the training data; None: unknown")
    config_sha256: str | None = Field(description="hash of the trainer config; None: unknown")
    n_structures: int | None = None
    n_atoms: int | None = None


class Potential(_Record):
    """A trained potential and everything needed to deploy it.

    Paths are stored relative to the run directory (the folder of ``potential.json``) so that a
    run directory can be moved as a whole; the ``*_path`` properties give absolute paths.
    ``reference_energies`` (eV/atom per element) are part of the energy the potential predicts.
    """

    run_dir: Path = Field(exclude=True)
    trainer: Literal["mock", "pacemaker"]
    yace_file: str = Field(description="C-tilde potential for ASE (pyace) and LAMMPS (ML-PACE)")
    yaml_file: str | None = Field(None, description="B-basis potential (pacemaker's own format)")
    active_set_file: str | None = Field(None, description="active set (.asi) for extrapolation")
    gamma_tolerance: float = Field(
        1.01,
        description=(
            "MaxVol tolerance the active set was built with: a structure whose extrapolation "
            "grade gamma exceeds it lies outside the training set (pace_activeset's default)"
        ),
    )
    elements: tuple[str, ...]
    cutoff: float = Field(description="Å")
    baseline: Baseline = Field(default_factory=NoBaseline)
    reference_energies: dict[str, float] = Field(default_factory=dict)
    reference_energies_warning: str | None = Field(
        None,
        description="set when the data did not determine the reference energies: what they mean",
    )
    train_metrics: FitMetrics | None = None
    test_metrics: FitMetrics | None = None
    selection: Selection | None = Field(
        None, description="D-optimal selection of the training structures, if any"
    )
    dimer_checks: tuple[DimerCheck, ...] = Field(
        (), description="short-range behaviour of every element pair, checked after the fit"
    )
    compression_checks: tuple[CompressionCheck, ...] = Field(
        (), description="training structures compressed to 0.6 of their volume after the fit"
    )
    checks_passed: bool | None = Field(
        None, description="whether the potential passed the safety gate; None: not checked"
    )
    cost: FitCost | None = Field(None, description="estimated and measured cost of the fit")
    fit_stop: FitStop | None = Field(
        None, description="resumed, stopped early, or finished from an interim potential"
    )
    provenance: Provenance

    # -- files --------------------------------------------------------------------------------

    @property
    def yace_path(self) -> Path:
        return self.run_dir / self.yace_file

    @property
    def yaml_path(self) -> Path | None:
        return None if self.yaml_file is None else self.run_dir / self.yaml_file

    @property
    def active_set_path(self) -> Path | None:
        return None if self.active_set_file is None else self.run_dir / self.active_set_file

    def save(self) -> Path:
        """Write ``potential.json`` into the run directory, atomically; returns its path."""
        path = self.run_dir / POTENTIAL_JSON
        text = self.model_dump_json(indent=2)
        write_text_atomic(path, text + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Potential:
        """Load a potential from its ``potential.json`` or from the run directory holding it."""
        path = Path(path)
        if path.is_dir():
            path = path / POTENTIAL_JSON
        data: dict[str, Any] = json.loads(path.read_text())
        potential = cls.model_validate({**data, "run_dir": path.parent.resolve()})
        if potential.checks_passed is False:
            failures = [check.failure() for check in potential.dimer_checks]
            failures += [check.failure() for check in potential.compression_checks]
            warnings.warn(
                f"the potential in {potential.run_dir} FAILED its safety checks "
                "(checks_passed: false); use it knowingly: "
                + "; ".join(f for f in failures if f is not None),
                UserWarning,
                stacklevel=2,
            )
        if potential.fit_stop is not None and potential.fit_stop.finished_from == "interim":
            warnings.warn(
                f"the potential in {potential.run_dir} was finished from the interim potential "
                f"of an interrupted fit (iteration {potential.fit_stop.stopped_at_iteration})",
                UserWarning,
                stacklevel=2,
            )
        return potential

    # -- deployment ---------------------------------------------------------------------------

    def _active_set_files(self) -> tuple[Path, Path]:
        """The B-basis ``.yaml`` and its active set, which the extrapolation grade needs."""
        if self.active_set_path is None or self.yaml_path is None:
            raise ValueError(f"the potential in {self.run_dir} has no active set (.asi)")
        return self.yaml_path, self.active_set_path

    def ase_calculator(self, extrapolation: bool = False) -> BaseCalculator:
        """An ASE calculator of the deployed potential: ACE (pyace), plus the baseline if any.

        Energies are total energies in eV on the scale of the training labels, forces in eV/Å.
        With ``extrapolation`` the results also hold ``gamma``, the per-atom extrapolation
        grade from the active set (above ``gamma_tolerance``: the environment lies outside the
        training set).
        """
        if self.trainer == "mock":
            raise ValueError(
                f"{self.yace_path} is a mock placeholder (trainer: mock), not a real potential"
            )
        baseline = pair_potential(self.baseline, self.elements)
        if extrapolation:
            yaml_path, active_set_path = self._active_set_files()
            return ExtrapolationCalculator(
                yaml_path, active_set_path, self.reference_energies, baseline
            )
        from pyace import PyACECalculator

        ace: BaseCalculator = PyACECalculator(str(self.yace_path))
        if baseline is None:
            return ace
        return SumCalculator([ace, BaselineCalculator(baseline)])

    def lammps_commands(self, extrapolation: bool = False) -> list[str]:
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
            yaml_path, active_set_path = self._active_set_files()
            ace_style = "pace/extrapolation"
            ace_files = f"{yaml_path} {active_set_path}"
            gamma = [
                "fix pace_gamma all pair 10 pace/extrapolation gamma 1",
                "compute max_pace_gamma all reduce max f_pace_gamma",
            ]
        else:
            ace_style, ace_files, gamma = "pace", str(self.yace_path), []
        return self._pair_commands(ace_style, ace_files) + gamma

    def _pair_commands(self, ace_style: str, ace_files: str) -> list[str]:
        elements = " ".join(self.elements)
        baseline = self.baseline
        if isinstance(baseline, NoBaseline):
            return [f"pair_style {ace_style}", f"pair_coeff * * {ace_files} {elements}"]
        pace = f"pair_coeff * * {ace_style} {ace_files} {elements}"
        pairs = [
            (i + 1, j + 1, first, second)
            for i, first in enumerate(self.elements)
            for j, second in enumerate(self.elements)
            if j >= i
        ]
        if isinstance(baseline, ZBLBaseline):
            return [
                pace if line == _PACE_COEFF else line
                for line in zbl_commands(baseline, self.elements, ace_style)
            ]
        parameters = lj_pair_parameters(baseline, self.elements)
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
