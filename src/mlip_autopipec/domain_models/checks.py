"""Records of the safety checks of a potential: isolated dimers and compressed structures.

The checks themselves run in ``analysis/`` (dimers, safety); the records are part of the
``Potential`` record and live here, beside it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: Closest distance (Å) of the dimer curves.
SHORTEST_DIMER_DISTANCE = 0.5
#: Largest fall of E (eV), going inwards below the data, from the highest energy reached so far:
#: a shallow dip (a dimer bound a little shorter than any bond in the data, like C2 or EMT's
#: Cu2) is tolerated, a deeper well is not.
DIP_TOLERANCE_EV = 1.0


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


class CompressionCheck(BaseModel):
    """One training structure scaled isotropically from its volume down to 0.6 of it.

    A structure from the data lies at or near equilibrium: its energy may first fall a little
    (a stretched frame), but from its minimum along the path, which must lie above
    ``MINIMUM_NOT_BELOW`` of the volume, it must rise at every step.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    name: str
    passed: bool
    violation_volume_fraction: float | None  # where the energy falls (or its minimum is)
    violation_shortest_distance: float | None  # Å; the shortest interatomic distance there
    energy_rise_ev: float  # E at the smallest volume minus E at the minimum

    def failure(self) -> str | None:
        """What is wrong, naming the structure and the distance; None when the check passed."""
        if self.passed:
            return None
        return (
            f"compression of structure {self.index} '{self.name}': the energy falls as it is "
            f"compressed, at {self.violation_volume_fraction:.2f} of its volume (shortest "
            f"interatomic distance {self.violation_shortest_distance:.3f} Å)"
        )
