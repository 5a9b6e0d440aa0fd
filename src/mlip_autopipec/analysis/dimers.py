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

log = logging.getLogger(__name__)

#: The plot of the dimer curves in a run directory.
DIMERS_PNG = "dimers.png"
#: Closest distance (Å) of the dimer curves.
SHORTEST_DIMER_DISTANCE = 0.5
#: Grid step (Å) of the dimer curves.
DIMER_STEP = 0.01
#: Largest fall of E (eV), going inwards below the data, from the highest energy reached so far:
#: a shallow dip (a dimer bound a little shorter than any bond in the data, like C2 or EMT's
#: Cu2) is tolerated, a deeper well is not.
DIP_TOLERANCE_EV = 1.0
#: Distances (Å) whose energies are reported in the record.
REPORTED_DISTANCES = (0.6, 1.0, 1.5)
#: Smallest rise of E (eV) from the checked distance down to the closest point of the curve: a
#: weaker wall does not stop two atoms from sitting on top of each other.
MIN_WALL_EV = 1.0


class DimerCheck(BaseModel):
    """The short-range behaviour of one element pair as an isolated dimer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pair: tuple[str, str]
    shortest_distance_in_data: float | None  # Å; None: the pair never meets in the data
    repulsive_below_data: bool  # E(r) never falls as r falls below that distance, and rises
    first_violation_distance: float | None  # Å; where E stops rising, going inwards
    energies_ev: dict[str, float]  # E(r) - E(cutoff) at REPORTED_DISTANCES, keyed "0.6" etc.
    checked_below: float | None = None  # Å; the distance below which E(r) must rise
    wall_ev: float | None = None  # eV; E at the closest point minus E at checked_below

    def failure(self) -> str | None:
        """What is wrong, naming the pair and the distance; None when the check passed."""
        if self.repulsive_below_data:
            return None
        pair = "-".join(self.pair)
        where = (
            f"its shortest distance in the data ({self.shortest_distance_in_data:.3f} Å)"
            if self.shortest_distance_in_data is not None
            else f"{self.checked_below:.3f} Å (sum of covalent radii; no {pair} pair in the data)"
        )
        if self.first_violation_distance is not None:
            return (
                f"dimer {pair}: the energy falls by more than {DIP_TOLERANCE_EV:g} eV as the "
                f"atoms approach, at {self.first_violation_distance:.2f} Å (below {where})"
            )
        return (
            f"dimer {pair}: the energy rises by only {self.wall_ev:.3g} eV from {where} to "
            f"{SHORTEST_DIMER_DISTANCE} Å: nothing keeps the atoms apart"
        )


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
