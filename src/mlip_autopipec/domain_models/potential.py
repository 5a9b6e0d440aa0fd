"""A trained potential: its files, what it was trained on and how well it fits."""

from __future__ import annotations

import hashlib
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.config.config_model import Baseline, NoBaseline
from mlip_autopipec.domain_models import deployment
from mlip_autopipec.domain_models.checks import CompressionCheck, DimerCheck
from mlip_autopipec.domain_models.fit_stop import FitStop
from mlip_autopipec.domain_models.lineage import Lineage
from mlip_autopipec.domain_models.metrics import FitMetrics
from mlip_autopipec.errors import NotAFinishedRun
from mlip_autopipec.files import write_text_atomic

if TYPE_CHECKING:
    from ase.calculators.calculator import BaseCalculator

#: Name of the record that sits beside a potential's files.
POTENTIAL_JSON = "potential.json"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    estimate_method: str | None = Field(
        None, description="measured: pacemaker fitted a sample of the data; model: calibrated model"
    )
    estimate_note: str | None = Field(None, description="what was measured, or why not")
    time_budget_s: float | None = Field(None, description="fit.time_budget; None: no budget")
    s_per_iteration: float | None = Field(None, description="measured, from pacemaker's log")
    s_per_evaluation: float | None = Field(
        None, description="measured: s per loss evaluation (an iteration may take several)"
    )
    iterations: int | None = Field(None, description="iterations the fit ran")
    startup_s: float | None = Field(None, description="measured, before the first iteration")
    fit_s: float | None = Field(None, description="wall time of the pacemaker run")
    stopped_at_budget: bool = Field(False, description="the fit was ended by the time budget")
    still_improving: str | None = Field(
        None, description="set when the test loss was still falling at the end: by how much"
    )


class DataFile(_Record):
    """A data file a run wrote (its structures as fitted), recorded so that a later use of the
    run can check that the file is still what the run fitted."""

    n_structures: int
    sha256: str = Field(description="SHA-256 of the file's bytes")


class Provenance(_Record):
    """Where a potential came from: enough to tell two potentials apart and to reproduce one."""

    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    tool_versions: dict[str, str] = Field(default_factory=dict)
    data_sha256: str | None = Field(description="hash of the training data; None: unknown")
    config_sha256: str | None = Field(description="hash of the trainer config; None: unknown")
    n_structures: int | None = None
    n_atoms: int | None = None
    data_files: dict[str, DataFile] = Field(
        default_factory=dict,
        description=(
            "the structures the run wrote (training_set.extxyz, test_set.extxyz), by file "
            "name: checked whenever the run is continued from (empty: an older record)"
        ),
    )

    def data_files_sha256(self) -> str | None:
        """One hash of the run's data files (None: none recorded): what a next generation
        records of its parent."""
        if not self.data_files:
            return None
        return files_sha256({name: file.sha256 for name, file in self.data_files.items()})


def files_sha256(hashes: dict[str, str]) -> str:
    """One hash of several files, from each file's name and SHA-256."""
    digest = hashlib.sha256()
    for name in sorted(hashes):
        digest.update(f"{name}\0{hashes[name]}\0".encode())
    return digest.hexdigest()


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
    lineage: Lineage | None = Field(
        None, description="generation, parent run and how the fit started; None: no parent"
    )
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

    # -- deployment (domain_models/deployment.py) ---------------------------------------------

    def ase_calculator(self, extrapolation: bool = False) -> BaseCalculator:
        """An ASE calculator of the deployed potential: ACE (pyace), plus the baseline if any.

        Energies in eV, forces in eV/Å; with ``extrapolation`` the results also hold ``gamma``,
        the per-atom extrapolation grade (see :func:`deployment.ase_calculator`).
        """
        return deployment.ase_calculator(self, extrapolation)

    def lammps_commands(self, extrapolation: bool = False) -> list[str]:
        """LAMMPS input lines for the deployed potential; atom type k is ``elements[k-1]``
        (see :func:`deployment.lammps_commands`)."""
        return deployment.lammps_commands(self, extrapolation)


def load_finished_run(run_dir: str | Path) -> Potential:
    """The potential of the finished run in ``run_dir`` (its directory, or its
    ``potential.json``): the one way to load a finished run. NotAFinishedRun when there is no
    ``potential.json`` or it cannot be read; a potential that failed its checks or was finished
    from an interim potential is loaded with a warning (``Potential.load``)."""
    path = Path(run_dir)
    record = path / POTENTIAL_JSON if path.is_dir() or not path.suffix else path
    if not record.is_file():
        raise NotAFinishedRun(
            f"{path} holds no {POTENTIAL_JSON}: it holds no finished potential (not the directory "
            "of a finished run)",
            path=path,
        )
    try:
        return Potential.load(record)
    except (OSError, ValueError) as error:  # invalid JSON or record (pydantic: ValueError)
        raise NotAFinishedRun(
            f"{path}: unreadable {POTENTIAL_JSON} ({error})", path=path
        ) from error
