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
#: Largest rise of E (eV) from one grid point to the next outward one that still counts as flat.
FLAT_TOLERANCE = 1e-6
#: Distances (Å) whose energies are reported in the record.
REPORTED_DISTANCES = (0.6, 1.0, 1.5)


class DimerCheck(BaseModel):
    """The short-range behaviour of one element pair as an isolated dimer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pair: tuple[str, str]
    shortest_distance_in_data: float | None  # Å; None: the pair never meets in the data
    repulsive_below_data: bool  # E(r) never falls as r falls below that distance
    first_violation_distance: float | None  # Å; where E stops rising, going inwards
    energies_ev: dict[str, float]  # E(r) - E(cutoff) at REPORTED_DISTANCES, keyed "0.6" etc.


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
    """Whether each curve rises monotonically as r falls below the shortest distance in the data.

    A pair absent from the data is checked below the shortest distance of all pairs. Each curve
    that fails is logged as a warning with the pair and the distance.
    """
    fallback = min(shortest_distances.values()) if shortest_distances else None
    checks = []
    for curve in curves:
        in_data = shortest_distances.get(curve.pair)
        limit = in_data if in_data is not None else fallback
        distances = np.array(curve.distances)
        energies = np.array(curve.energies)
        inside = distances <= (limit if limit is not None else distances[-1])
        # Going inwards (falling r), the energy must not fall (flat, e.g. beyond a cutoff, is fine).
        rises = np.diff(energies[inside]) <= FLAT_TOLERANCE
        violation = None
        if not rises.all():
            last_bad = int(np.nonzero(~rises)[0].max())
            violation = float(distances[inside][last_bad + 1])
            log.warning(
                "dimer %s-%s: the energy does not rise as atoms approach below %.2f Å "
                "(it falls again at %.2f Å): the potential may collapse at short range",
                *curve.pair,
                limit or distances[-1],
                violation,
            )
        checks.append(
            DimerCheck(
                pair=curve.pair,
                shortest_distance_in_data=in_data,
                repulsive_below_data=violation is None,
                first_violation_distance=violation,
                energies_ev={
                    f"{r:g}": float(np.interp(r, distances, energies)) for r in REPORTED_DISTANCES
                },
            )
        )
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
