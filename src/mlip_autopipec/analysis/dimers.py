"""Short-range check: the energy of an isolated dimer must rise as its atoms are pushed together."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from itertools import combinations_with_replacement
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from pydantic import BaseModel, ConfigDict

from mlip_autopipec.domain_models.checks import (
    DIP_TOLERANCE_EV,
    SHORTEST_DIMER_DISTANCE,
    DimerCheck,
)

log = logging.getLogger(__name__)

#: The plot of the dimer curves in a run directory.
DIMERS_PNG = "dimers.png"
#: Grid step (Å) of the dimer curves.
DIMER_STEP = 0.01
#: Distances (Å) whose energies are reported in the record.
REPORTED_DISTANCES = (0.6, 1.0, 1.5)
#: Smallest rise of E (eV) from the checked distance down to the closest point of the curve: a
#: weaker wall does not stop two atoms from sitting on top of each other.
MIN_WALL_EV = 1.0


class DimerCurve(BaseModel):
    """E(r) of one dimer, relative to its energy at the cutoff (eV), on a grid of r (Å)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pair: tuple[str, str]
    distances: list[float]
    energies: list[float]


def dimer_curves(
    calculator: BaseCalculator,
    elements: Sequence[str],
    cutoff: float,
    *,
    shortest: float = SHORTEST_DIMER_DISTANCE,
    step: float = DIMER_STEP,
) -> list[DimerCurve]:
    """E(r) from ``shortest`` to ``cutoff`` (Å) for every element pair, isolated in vacuum."""
    distances = np.arange(shortest, cutoff + 0.5 * step, step)
    curves = []
    for first, second in combinations_with_replacement(sorted(elements), 2):
        energies = []
        for distance in distances:
            dimer = Atoms(f"{first}{second}", positions=[[0, 0, 0], [0, 0, distance]])
            dimer.calc = calculator
            energies.append(dimer.get_potential_energy())
        relative = np.array(energies) - energies[-1]
        curves.append(
            DimerCurve(
                pair=(first, second), distances=distances.tolist(), energies=relative.tolist()
            )
        )
    return curves


def check_dimer_curves(
    curves: Sequence[DimerCurve], shortest_distances: Mapping[tuple[str, str], float]
) -> list[DimerCheck]:
    """Whether each curve rises steadily as r falls below the shortest distance in the data.

    A pair absent from the data is checked below the sum of its covalent radii. Going inwards,
    the energy must never fall more than ``DIP_TOLERANCE_EV`` below the highest value reached
    (flat is fine, e.g. beyond a cutoff), and it must rise by at least ``MIN_WALL_EV`` down to
    the closest point. Each curve that fails is logged as a
    warning with the pair and the distance.
    """
    from mlip_autopipec.domain_models.baseline import covalent_distance

    checks = []
    for curve in curves:
        in_data = shortest_distances.get(curve.pair)
        limit = in_data if in_data is not None else covalent_distance(*curve.pair)
        distances = np.array(curve.distances)
        energies = np.array(curve.energies)
        inside = distances <= limit
        # Going inwards (falling r), the energy must not fall more than DIP_TOLERANCE_EV below
        # the highest value reached so far (flat, e.g. beyond a cutoff, is fine).
        inwards = energies[inside][::-1]
        dips = np.maximum.accumulate(inwards) - inwards
        violation = None
        if (dips > DIP_TOLERANCE_EV).any():
            first_bad = int(np.argmax(dips > DIP_TOLERANCE_EV))
            violation = float(distances[inside][::-1][first_bad])
        wall = float(energies[0] - np.interp(limit, distances, energies))
        check = DimerCheck(
            pair=curve.pair,
            shortest_distance_in_data=in_data,
            repulsive_below_data=violation is None and wall >= MIN_WALL_EV,
            first_violation_distance=violation,
            energies_ev={
                f"{r:g}": float(np.interp(r, distances, energies)) for r in REPORTED_DISTANCES
            },
            checked_below=limit,
            wall_ev=wall,
        )
        if not check.repulsive_below_data:
            log.warning("%s: the potential may collapse at short range", check.failure())
        checks.append(check)
    return checks


def plot_dimer_curves(
    curves: Sequence[DimerCurve],
    shortest_distances: Mapping[tuple[str, str], float],
    path: Path,
) -> Path:
    """Plot E(r) of every dimer to a PNG, marking the shortest distance of each pair in the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (full, zoom) = plt.subplots(1, 2, figsize=(11, 4.5))
    for index, curve in enumerate(curves):
        colour = f"C{index}"
        label = "-".join(curve.pair)
        for axes in (full, zoom):
            axes.plot(curve.distances, curve.energies, color=colour, label=label)
            if curve.pair in shortest_distances:
                axes.axvline(shortest_distances[curve.pair], color=colour, linestyle=":")
    full.set_yscale("symlog", linthresh=1.0)
    full.set_title("isolated dimers (dotted: shortest distance in the data)")
    zoom.set_ylim(-5, 10)
    zoom.set_title("zoom: -5 to 10 eV")
    for axes in (full, zoom):
        axes.set_xlabel("distance r (Å)")
        axes.set_ylabel("E(r) - E(cutoff) (eV)")
        axes.axhline(0.0, color="grey", linewidth=0.5)
        axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def check_short_range(
    calculator: BaseCalculator,
    elements: Sequence[str],
    cutoff: float,
    shortest_distances: Mapping[tuple[str, str], float],
    png: Path,
) -> list[DimerCheck]:
    """Dimer curves of every element pair (0.5 Å to ``cutoff``), plotted to ``png`` and checked."""
    curves = dimer_curves(calculator, elements, cutoff)
    plot_dimer_curves(curves, shortest_distances, png)
    return check_dimer_curves(curves, shortest_distances)
