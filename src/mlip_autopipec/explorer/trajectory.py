"""One trajectory: MD at one condition, graded every ``check_every`` steps, stopped when unsafe.

Its folder holds ``frames.extxyz`` (every graded frame, per-atom ``gamma``), ``candidates.extxyz``
(the frames to label) and, written last, ``summary.json``: a folder without it is unfinished
(its frames file is still ``frames.partial.extxyz``) and is run again.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms, units
from ase.io import write
from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.config.explorer import ExplorerConfig
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.explorer.contacts import ContactFloors
from mlip_autopipec.explorer.engine import Engine
from mlip_autopipec.files import atomic_path, write_text_atomic

FRAMES = "frames.extxyz"
FRAMES_PARTIAL = "frames.partial.extxyz"
CANDIDATES = "candidates.extxyz"
SUMMARY_JSON = "summary.json"

StopReason = Literal[
    "completed",
    "gamma_upper",
    "close_contact",
    "energy_jump",
    "energy_drop",
    "enough_candidates",
    "error",
]


class TrajectoryTask(BaseModel):
    """One structure at one condition, one of ``trajectories_per_condition`` replicas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="the trajectory's folder name")
    structure_index: int
    temperature_K: float = Field(description="K")
    pressure_GPa: float | None = Field(description="GPa; None: NVT")
    replica: int
    seed: int = Field(description="of its velocities and thermostat noise")
    key: str = Field(description="hash of everything that determines it: a changed one reruns")

    @property
    def condition(self) -> str:
        text = f"T={self.temperature_K:g}K"
        return text if self.pressure_GPa is None else f"{text},P={self.pressure_GPa:g}GPa"


class TrajectorySummary(BaseModel):
    """How far a trajectory got, how far out of its training set, and why it stopped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    key: str
    structure_index: int
    temperature_K: float = Field(description="K")
    pressure_GPa: float | None = Field(description="GPa; None: NVT")
    replica: int
    steps_done: int
    steps_planned: int
    max_gamma: float = Field(description="largest extrapolation grade of its graded frames")
    n_checked_frames: int = Field(description="frames graded (every check_every steps)")
    n_frames_above_lower: int = Field(description="graded frames with max gamma > gamma_lower")
    n_candidates: int = Field(description="frames written as candidates (the stop's included)")
    stop_reason: StopReason
    message: str | None = Field(None, description="what stopped it, in words")
    wall_s: float = Field(description="s of wall time")


def run_trajectory(
    task: TrajectoryTask,
    potential: Potential,
    structure: Atoms,
    config: ExplorerConfig,
    floors: ContactFloors,
    engine: Engine,
    directory: Path,
) -> TrajectorySummary:
    """Run one trajectory in ``directory`` (ours: replaced files are our own) and write its
    frames, candidates and summary."""
    start = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    for name in (FRAMES, FRAMES_PARTIAL, CANDIDATES, SUMMARY_JSON):
        (directory / name).unlink(missing_ok=True)
    # 1. the structure, its velocities, the calculator and the thermostat (and barostat)
    atoms = Atoms(
        numbers=structure.numbers, positions=structure.positions, cell=structure.cell,
        pbc=structure.pbc,
    )  # fmt: skip
    rng = np.random.default_rng(task.seed)
    atoms.calc = engine.calculator(potential)
    grade = engine.grader(potential)
    dynamics = _dynamics(atoms, task, config, rng)
    # 2. MD in blocks of check_every steps, each block's last frame graded and checked
    watch = _Watch(task, config, floors, directory / FRAMES_PARTIAL)
    step, reason, message = 0, "completed", None
    while True:
        try:
            stop = watch.check(atoms, step, grade)
        except Exception as error:  # the potential may fail on a broken frame
            stop = ("error", f"grading step {step} failed: {type(error).__name__}: {error}")
        if stop is not None:
            reason, message = stop
            break
        if step >= config.steps:
            break
        block = min(config.check_every, config.steps - step)
        try:
            dynamics.run(block)
        except Exception as error:
            reason = "error"
            message = f"MD failed after step {step}: {type(error).__name__}: {error}"
            break
        step += block
    # 3. files: frames, candidates, then the summary that marks the trajectory finished
    if (directory / FRAMES_PARTIAL).exists():
        (directory / FRAMES_PARTIAL).rename(directory / FRAMES)
    with atomic_path(directory / CANDIDATES) as temporary:
        write(temporary, watch.candidates, format="extxyz")
    summary = TrajectorySummary(
        id=task.id,
        key=task.key,
        structure_index=task.structure_index,
        temperature_K=task.temperature_K,
        pressure_GPa=task.pressure_GPa,
        replica=task.replica,
        steps_done=step,
        steps_planned=config.steps,
        max_gamma=watch.max_gamma,
        n_checked_frames=watch.n_checked,
        n_frames_above_lower=watch.n_above_lower,
        n_candidates=len(watch.candidates),
        stop_reason=reason,
        message=message,
        wall_s=time.monotonic() - start,
    )
    write_text_atomic(directory / SUMMARY_JSON, summary.model_dump_json(indent=2) + "\n")
    return summary


def _dynamics(
    atoms: Atoms, task: TrajectoryTask, config: ExplorerConfig, rng: np.random.Generator
) -> Any:
    from ase.md.langevin import Langevin
    from ase.md.langevinbaoab import LangevinBAOAB
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

    thermalize_momenta(atoms, temperature_K=task.temperature_K, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    timestep = config.timestep_fs * units.fs
    if task.pressure_GPa is None:
        return Langevin(
            atoms,
            timestep,
            temperature_K=task.temperature_K,
            friction=config.friction / units.fs,
            fixcm=False,
            rng=rng,
        )
    thermostat_s = units.fs / config.friction
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using heuristic P_mass")  # its documented default
        return LangevinBAOAB(
            atoms,
            timestep,
            temperature_K=task.temperature_K,
            externalstress=-task.pressure_GPa * units.GPa,  # ASE: stress = -pressure
            hydrostatic=True,
            T_tau=thermostat_s,
            P_tau=20 * thermostat_s,  # the barostat 20 times slower, as ASE's default
            rng=rng,
        )


class _Watch:
    """Grades frames, keeps the candidates, and says when the trajectory must stop."""

    def __init__(
        self, task: TrajectoryTask, config: ExplorerConfig, floors: ContactFloors, frames: Path
    ) -> None:
        self.task, self.config, self.floors, self.frames = task, config, floors, frames
        self.candidates: list[Atoms] = []
        self.max_gamma = 0.0
        self.n_checked = 0
        self.n_above_lower = 0
        self.previous_energy: float | None = None
        self.previous_step = 0
        self.first_energy: float | None = None

    def check(self, atoms: Atoms, step: int, grade: Any) -> tuple[str, str] | None:
        """Grade the frame at ``step``; (stop reason, message) when the trajectory must stop."""
        config = self.config
        if not np.isfinite(atoms.positions).all():
            return "error", f"the positions are not finite at step {step}"
        contact = self.floors.closest_violation(atoms)
        if contact is not None:
            key, distance, _ = contact
            reason = f"{'-'.join(key)} atoms {distance:.3f} Å apart at step {step}, below the "
            stop: tuple[str, str] | None = ("close_contact", reason + self.floors.describe(key))
            energy, gamma = _try_grade(grade, atoms)
        else:
            energy, gamma = grade(atoms)
            stop = None
        max_gamma = float(np.max(gamma)) if gamma is not None and len(gamma) else math.nan
        n = len(atoms)
        if stop is None and self.previous_energy is not None:
            jump = abs(energy - self.previous_energy) / n
            if jump > config.max_energy_jump_eV_per_atom:
                stop = (
                    "energy_jump",
                    f"the energy changed by {jump:.3f} eV/atom between steps "
                    f"{self.previous_step} and {step}, more than "
                    f"max_energy_jump_eV_per_atom = {config.max_energy_jump_eV_per_atom:g}",
                )
        if stop is None:
            stop = self._drop(energy, n, step)
        if stop is None and max_gamma > config.gamma_upper:
            stop = (
                "gamma_upper",
                f"max gamma {max_gamma:.2f} at step {step} exceeds gamma_upper = "
                f"{config.gamma_upper:g}",
            )
        self.previous_energy, self.previous_step = energy, step
        if self.first_energy is None and math.isfinite(energy):
            self.first_energy = energy
        self.n_checked += 1
        if np.isfinite(max_gamma):
            self.max_gamma = max(self.max_gamma, max_gamma)
        above = max_gamma > config.gamma_lower
        self.n_above_lower += int(above)
        enough = config.candidates_per_trajectory
        if stop is None and above and enough is not None and len(self.candidates) + 1 >= enough:
            stop = (
                "enough_candidates",
                f"candidate {enough} at step {step} (explorer.candidates_per_trajectory)",
            )
        frame = self._frame(atoms, step, energy, gamma, max_gamma)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write(self.frames, frame, format="extxyz", append=True)
        if above or stop is not None:
            candidate = frame.copy()
            del candidate.arrays["gamma"]
            if stop is not None:
                candidate.info["stop_reason"] = stop[0]
            self.candidates.append(candidate)
        return stop

    def _drop(self, energy: float, n: int, step: int) -> tuple[str, str] | None:
        """The stop when the energy per atom fell more than the allowed drop below the first
        graded frame's."""
        limit = self.config.max_energy_drop_eV_per_atom
        if limit is None or self.first_energy is None:
            return None
        drop = (self.first_energy - energy) / n
        if not drop > limit:
            return None
        return (
            "energy_drop",
            f"the energy fell {drop:.3f} eV/atom below the first frame's at step {step}, more "
            f"than max_energy_drop_eV_per_atom = {limit:g}: the potential has a minimum the "
            "oracle likely has not",
        )

    def _frame(
        self, atoms: Atoms, step: int, energy: float, gamma: np.ndarray | None, max_gamma: float
    ) -> Atoms:
        task = self.task
        frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell,
                      pbc=atoms.pbc)  # fmt: skip
        frame.arrays["gamma"] = (
            np.asarray(gamma, dtype=float) if gamma is not None else np.full(len(atoms), np.nan)
        )
        frame.info.update(
            name=f"{task.id}/step{step}",
            trajectory=task.id,
            step=step,
            condition=task.condition,
            structure_index=task.structure_index,
            temperature_K=task.temperature_K,
            max_gamma=max_gamma,
            ace_energy_eV=energy,
        )
        if task.pressure_GPa is not None:
            frame.info["pressure_GPa"] = task.pressure_GPa
        return frame


def _try_grade(grade: Any, atoms: Atoms) -> tuple[float, np.ndarray | None]:
    """The grade of a frame that stops anyway: NaN where the potential cannot grade it."""
    try:
        energy, gamma = grade(atoms)
    except Exception:  # atoms on top of each other may break the potential
        return math.nan, None
    return float(energy), gamma
