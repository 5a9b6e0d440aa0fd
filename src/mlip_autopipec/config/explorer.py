"""Configuration of the explorer: MD with the potential, watched by its extrapolation grade."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from mlip_autopipec.config.base import NotBool, StrictModel


def _default_workers() -> int:
    return min(2, os.cpu_count() or 1)


class ExplorerConfig(StrictModel):
    """Langevin MD (NVT; NPT for periodic cells when pressures are given) at each condition.

    Every ``check_every`` steps the frame is graded: its max gamma above ``gamma_lower`` makes
    it a candidate for labelling; the trajectory stops (its last frame a candidate too) when
    gamma exceeds ``gamma_upper``, when two atoms come closer than the floor, when the
    energy jumps, or when it falls below the first frame's (a hole in the potential). The
    thresholds are pacemaker's active-learning recipe (LAMMPS ``pace/extrapolation``: dump
    frames above gamma ~5, halt above ~25).
    Use ``timestep_fs: 0.5`` for molecules with hydrogen.
    """

    temperatures_K: list[Annotated[PositiveFloat, NotBool]] = Field(
        min_length=1, description="K, thermostat temperatures; each is a condition"
    )
    pressures_GPa: Annotated[list[Annotated[float, NotBool]], Field(min_length=1)] | None = Field(
        None,
        description=(
            "GPa, barostat pressures (hydrostatic Langevin NPT, periodic cells only); each "
            "temperature runs at each pressure. None: NVT, the cell fixed"
        ),
    )
    steps: Annotated[PositiveInt, NotBool] = Field(
        1000, description="MD steps per trajectory (times timestep_fs: its length)"
    )
    timestep_fs: Annotated[PositiveFloat, NotBool] = Field(
        1.0, description="fs, MD time step (1 for metals; 0.5 for molecules with H)"
    )
    friction: Annotated[PositiveFloat, NotBool] = Field(
        0.01,
        description="1/fs, Langevin friction (0.01: the thermostat acts over ~100 fs)",
    )
    trajectories_per_condition: Annotated[PositiveInt, NotBool] = Field(
        1,
        description="independent trajectories (other velocities) per structure and condition",
    )
    workers: Annotated[PositiveInt, NotBool] = Field(
        default_factory=_default_workers,
        description=(
            "trajectories run at once, each in its own process (default: 2, or 1 on a single "
            "core); 1 runs them one after another in this process"
        ),
    )
    gamma_lower: Annotated[PositiveFloat, NotBool] = Field(
        1.5,
        description=(
            "extrapolation grade above which a frame is a candidate for labelling (the GRACE "
            "tutorial's 1.5; pacemaker's LAMMPS recipe dumps above ~5, which measured too late "
            "on EMT Cu-Pt: docs, performance)"
        ),
    )
    gamma_upper: Annotated[PositiveFloat, NotBool] = Field(
        25.0,
        description=(
            "extrapolation grade above which a trajectory stops: the potential is no longer "
            "trusted (pacemaker's recipe halts above ~25)"
        ),
    )
    candidates_per_trajectory: Annotated[PositiveInt, NotBool] | None = Field(
        None,
        description=(
            "a trajectory stops at its n-th candidate: once the potential extrapolates, MD "
            "follows forces it does not know, and each later frame is further from the "
            "physics (GFN2-xTB ethanol: 0.06 eV/atom above the molecule at its first "
            "candidate, 0.2-1 eV/atom at later ones). None: candidates until another stop"
        ),
    )
    check_every: Annotated[PositiveInt, NotBool] = Field(
        10, description="MD steps between two gradings of the frame (and checks of the stops)"
    )
    min_distance_factor: Annotated[PositiveFloat, NotBool] = Field(
        0.5,
        le=1.0,
        description=(
            "the close-contact floor of each element pair, as a fraction of its shortest "
            "distance in the reference (the training data when the caller gives it, else the "
            "starting structures; the sum of covalent radii for a pair in neither)"
        ),
    )
    min_distance_A: Annotated[PositiveFloat, NotBool] | None = Field(
        None,
        description="Å, one close-contact floor for every pair instead (overrides the factor)",
    )
    max_energy_jump_eV_per_atom: Annotated[PositiveFloat, NotBool] = Field(
        1.0,
        description=(
            "eV/atom, largest change of the potential energy between two checks; more stops "
            "the trajectory (a blow-up, not thermal motion)"
        ),
    )
    max_energy_drop_eV_per_atom: Annotated[PositiveFloat, NotBool] | None = Field(
        0.1,
        description=(
            "eV/atom, how far the potential energy may fall below the trajectory's first frame; "
            "more stops the trajectory: from a relaxed start, MD at a temperature only climbs, "
            "so a deeper minimum is one the potential made up (measured: GFN2-xTB molecules "
            "fell 0.2-2.4 eV/atom into such holes at gamma below 25; EMT Cu-Pt never fell). "
            "Start from relaxed structures; None: no such stop"
        ),
    )
    seed: Annotated[NonNegativeInt, NotBool] = Field(
        0, description="seed of the initial velocities and the thermostat's noise"
    )

    @model_validator(mode="after")
    def _thresholds(self) -> ExplorerConfig:
        if self.gamma_upper <= self.gamma_lower:
            raise ValueError(
                f"gamma_upper ({self.gamma_upper:g}) must exceed gamma_lower ({self.gamma_lower:g})"
            )
        return self

    def conditions(self) -> list[tuple[float, float | None]]:
        """(temperature in K, pressure in GPa or None), temperatures outer."""
        pressures: list[float | None] = [None]
        if self.pressures_GPa is not None:
            pressures = list(self.pressures_GPa)
        return [(t, p) for t in self.temperatures_K for p in pressures]
