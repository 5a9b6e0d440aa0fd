"""Physical baselines that the ACE potential corrects: ZBL and Lennard-Jones, as in LAMMPS.

Both are pair potentials evaluated from one neighbour list, vectorised over all pairs, with
energies (eV), forces (eV/Å) and virial stress (eV/Å^3, ASE's sign convention). ZBL follows
LAMMPS ``pair_style zbl inner outer`` term by term (screening function and switching
polynomial), Lennard-Jones follows ``pair_style lj/cut`` with geometric mixing, LAMMPS' default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers, covalent_radii

from mlip_autopipec.config.baseline import (
    Baseline,
    LJBaseline,
    NoBaseline,
    ZBLBaseline,
    split_pair,
)
from mlip_autopipec.domain_models.neighbours import neighbour_pairs

#: Default width (Å) of the ZBL switching region, at most half the outer cutoff.
DEFAULT_ZBL_SWITCH_WIDTH = 1.0

#: e^2 / (4 pi epsilon_0) in eV Å, LAMMPS' ``qqr2e`` in metal units.
COULOMB_CONSTANT = 14.399645
#: Universal ZBL screening length: a = ZBL_SCREENING_LENGTH / (Z_i^0.23 + Z_j^0.23), Å.
ZBL_SCREENING_LENGTH = 0.46850
ZBL_EXPONENT = 0.23
#: Universal screening function phi(x) = sum_k c_k exp(-d_k x).
ZBL_COEFFICIENTS = np.array([0.18175, 0.50986, 0.28022, 0.02817])
ZBL_DECAYS = np.array([3.19980, 0.94229, 0.40290, 0.20162])


# -- cutoffs from the data -------------------------------------------------------------------------


def resolve_baseline(
    baseline: Baseline,
    shortest_distances: Mapping[tuple[str, str], float],
    elements: Sequence[str] | None = None,
) -> Baseline:
    """The baseline with every cutoff left open chosen from the data's shortest distances (Å).

    ZBL gets inner and outer cutoffs for every pair of ``elements`` (default: the elements of
    ``shortest_distances``), listed in ``pair_cutoffs``:

    - a pair in the config's ``pair_cutoffs`` keeps its values;
    - with ``inner_cutoff``/``outer_cutoff`` given, every other pair gets one global pair of
      cutoffs: outer defaults to the shortest distance of all pairs, inner to
      ``max(outer / 2, outer - 1 Å)``;
    - otherwise each pair gets its own: outer = (1 - margin) x its shortest distance d (margin 0
      by default: a bond a little shorter than any in the data enters the smooth switching
      region at once, which measured better on held-out molecules than ACE extrapolating at
      full strength below the data), inner = ``max(outer / 2, outer - 1 Å)``, a switching
      region wide enough that ZBL and the fade of ACE add no force step. A pair absent from the
      data takes d = the sum of its covalent radii.

    ACE is faded out over each pair's switching region (see the input.yaml builder), so below
    its inner cutoff only ZBL acts. An inner cutoff at or beyond a pair's shortest distance in
    the data is refused: ZBL at full strength there would dominate the fit.
    """
    if not isinstance(baseline, ZBLBaseline):
        return baseline
    names = sorted(elements) if elements is not None else _elements_of(shortest_distances)
    given = {tuple(sorted(split_pair(key))): value for key, value in baseline.pair_cutoffs.items()}
    global_cutoffs = _global_cutoffs(baseline, shortest_distances)
    cutoffs: dict[str, tuple[float, float]] = {}
    for pair in combinations_with_replacement(names, 2):
        shortest = shortest_distances.get(pair)
        if pair in given:
            inner, outer = given[pair]
            where = f"b_ref.pair_cutoffs['{'-'.join(pair)}'] inner"
        elif global_cutoffs is not None:
            inner, outer = global_cutoffs
            where = "b_ref.inner_cutoff"
            shortest = min(shortest_distances.values())
        else:
            inner, outer = _pair_cutoffs_from_distance(
                shortest if shortest is not None else covalent_distance(*pair), baseline.margin
            )
            where = f"the inner cutoff of {'-'.join(pair)}"
        if shortest is not None and inner >= shortest:
            raise ValueError(
                f"{where} ({inner} Å) must lie below the shortest interatomic distance in "
                f"the data ({shortest:.3f} Å): ZBL at full strength where there is data would "
                "dominate the fit"
            )
        cutoffs["-".join(pair)] = (inner, outer)
    return baseline.model_copy(update={"pair_cutoffs": cutoffs})


def _global_cutoffs(
    baseline: ZBLBaseline, shortest_distances: Mapping[tuple[str, str], float]
) -> tuple[float, float] | None:
    """One (inner, outer) for every pair when the config gives either; None: per pair."""
    if baseline.inner_cutoff is None and baseline.outer_cutoff is None:
        return None
    shortest = min(shortest_distances.values())
    outer = baseline.outer_cutoff
    if outer is None:
        outer = round(shortest, 3)
        if baseline.inner_cutoff is not None and baseline.inner_cutoff >= outer:
            outer = baseline.inner_cutoff + DEFAULT_ZBL_SWITCH_WIDTH
    inner = baseline.inner_cutoff
    if inner is None:
        inner = round(max(0.5 * outer, outer - DEFAULT_ZBL_SWITCH_WIDTH), 3)
    return inner, outer


def _pair_cutoffs_from_distance(shortest: float, margin: float) -> tuple[float, float]:
    # Rounded down to 0.001 Å: ZBL stays exactly zero at the shortest distance of the data.
    outer = math.floor((1.0 - margin) * shortest * 1000 + 1e-9) / 1000
    inner = round(max(0.5 * outer, outer - DEFAULT_ZBL_SWITCH_WIDTH), 3)
    return inner, outer


def covalent_distance(first: str, second: str) -> float:
    """Sum of the covalent radii (Å, ASE's table) of two elements: a typical bond length."""
    return float(covalent_radii[atomic_numbers[first]] + covalent_radii[atomic_numbers[second]])


def _elements_of(shortest_distances: Mapping[tuple[str, str], float]) -> list[str]:
    return sorted({element for pair in shortest_distances for element in pair})


def zbl_pair_cutoffs(
    baseline: ZBLBaseline, elements: Sequence[str]
) -> dict[tuple[str, str], tuple[float, float]]:
    """(inner, outer) in Å for each sorted element pair of a resolved ZBL baseline.

    Pairs missing from ``pair_cutoffs`` (records written before per-pair cutoffs) take the
    global ``inner_cutoff``/``outer_cutoff``.
    """
    given = {tuple(sorted(split_pair(key))): value for key, value in baseline.pair_cutoffs.items()}
    table: dict[tuple[str, str], tuple[float, float]] = {}
    for pair in combinations_with_replacement(sorted(elements), 2):
        if pair in given:
            table[pair] = given[pair]
        elif baseline.inner_cutoff is not None and baseline.outer_cutoff is not None:
            table[pair] = (baseline.inner_cutoff, baseline.outer_cutoff)
        else:
            raise ValueError(
                f"the ZBL cutoffs of {'-'.join(pair)} must be resolved (resolve_baseline) "
                "before use"
            )
    return table


# -- pair potentials -------------------------------------------------------------------------------


class PairPotential:
    """A pair potential phi(r) per element pair, zero beyond ``cutoff`` (Å)."""

    cutoff: float

    def pair_energy(
        self, distances: np.ndarray, z_first: np.ndarray, z_second: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """phi(r) in eV and dphi/dr in eV/Å for each pair (distances below the cutoff)."""
        raise NotImplementedError

    def pair_reach(self, z_first: int, z_second: int) -> float:
        """Distance (Å) from which on the pair's energy is exactly zero."""
        return self.cutoff

    def energy_and_forces(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        """Total energy (eV) and forces (eV/Å)."""
        energy, _, forces, _ = self.evaluate(atoms)
        return energy, forces

    def evaluate(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Total energy (eV), per-atom energies (eV), forces (eV/Å) and virial stress (eV/Å^3,
        Voigt order xx yy zz yz xz xy; zero for a non-periodic structure)."""
        n_atoms = len(atoms)
        first, second, distances, vectors = neighbour_pairs(atoms, self.cutoff)
        numbers = atoms.numbers
        energy, derivative = self.pair_energy(distances, numbers[first], numbers[second])
        # Each pair appears twice (i->j and j->i): half of phi goes to each atom.
        energies = 0.5 * np.bincount(first, weights=energy, minlength=n_atoms)
        pair_forces = (derivative / distances)[:, None] * vectors
        forces = np.zeros((n_atoms, 3))
        for axis in range(3):
            forces[:, axis] = np.bincount(first, weights=pair_forces[:, axis], minlength=n_atoms)
        stress = np.zeros(6)
        if atoms.pbc.all():
            virial = 0.5 * np.einsum("p,pa,pb->ab", derivative / distances, vectors, vectors)
            virial /= atoms.get_volume()
            stress = virial[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        return float(energies.sum()), energies, forces, stress


@dataclass(frozen=True)
class ZBLPotential(PairPotential):
    """LAMMPS ``pair_style zbl inner outer``: ZBL plus a polynomial switch to zero at ``outer``.

    ``pair_cutoffs`` maps atomic-number pairs (both orders) to their own (inner, outer) in Å,
    as several ``zbl`` sub-styles of ``hybrid/overlay`` do; other pairs use ``inner_cutoff``
    and ``outer_cutoff``.
    """

    inner_cutoff: float
    outer_cutoff: float
    pair_cutoffs: Mapping[tuple[int, int], tuple[float, float]] = field(default_factory=dict)

    @property
    def cutoff(self) -> float:  # type: ignore[override]
        return max([self.outer_cutoff, *(outer for _, outer in self.pair_cutoffs.values())])

    @classmethod
    def from_baseline(cls, baseline: ZBLBaseline, elements: Sequence[str]) -> ZBLPotential:
        """The potential of a resolved baseline: every pair of ``elements`` with its cutoffs."""
        table = zbl_pair_cutoffs(baseline, elements)
        pair_cutoffs: dict[tuple[int, int], tuple[float, float]] = {}
        for (first, second), value in table.items():
            pair_cutoffs[(atomic_numbers[first], atomic_numbers[second])] = value
            pair_cutoffs[(atomic_numbers[second], atomic_numbers[first])] = value
        inner, outer = min(table.values(), key=lambda value: value[1])
        return cls(inner, outer, pair_cutoffs)

    def pair_reach(self, z_first: int, z_second: int) -> float:
        return self.pair_cutoffs.get((z_first, z_second), (0.0, self.outer_cutoff))[1]

    def pair_energy(
        self, distances: np.ndarray, z_first: np.ndarray, z_second: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        inner = np.full_like(distances, self.inner_cutoff)
        outer = np.full_like(distances, self.outer_cutoff)
        for (z_a, z_b), (pair_inner, pair_outer) in self.pair_cutoffs.items():
            mask = (z_first == z_a) & (z_second == z_b)
            inner[mask] = pair_inner
            outer[mask] = pair_outer
        inverse_screening = (z_first**ZBL_EXPONENT + z_second**ZBL_EXPONENT) / ZBL_SCREENING_LENGTH
        charge = COULOMB_CONSTANT * z_first * z_second
        energy, first, _ = _zbl_terms(distances, charge, inverse_screening)
        # Switching as LAMMPS' pair_zbl: a constant shift everywhere below outer, and a cubic +
        # quartic term between inner and outer, making E, E' and E'' vanish at outer.
        width = outer - inner
        e_c, de_c, d2e_c = _zbl_terms(outer, charge, inverse_screening)
        a = (-3.0 * de_c + width * d2e_c) / width**2
        b = (2.0 * de_c - width * d2e_c) / width**3
        shift = -e_c + 0.5 * width * de_c - width**2 / 12.0 * d2e_c
        t = np.clip(distances - inner, 0.0, None)
        energy = energy + shift + t**3 * (a / 3.0 + b / 4.0 * t)
        derivative = first + t**2 * (a + b * t)
        # Zero beyond each pair's own outer cutoff (the neighbour list reaches the largest).
        inside = distances < outer
        return np.where(inside, energy, 0.0), np.where(inside, derivative, 0.0)


def _zbl_terms(
    distances: np.ndarray, charge: np.ndarray, inverse_screening: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unswitched ZBL energy and its first and second derivatives with respect to r."""
    r = distances[:, None]
    decay = ZBL_DECAYS[None, :] * inverse_screening[:, None]
    terms = ZBL_COEFFICIENTS[None, :] * np.exp(-decay * r)
    phi = terms.sum(axis=1)
    dphi = -(decay * terms).sum(axis=1)
    d2phi = (decay**2 * terms).sum(axis=1)
    inverse_r = 1.0 / distances
    energy = charge * phi * inverse_r
    first = charge * (dphi - phi * inverse_r) * inverse_r
    second = charge * (d2phi - 2.0 * dphi * inverse_r + 2.0 * phi * inverse_r**2) * inverse_r
    return energy, first, second


@dataclass(frozen=True)
class LennardJonesPotential(PairPotential):
    """LAMMPS ``pair_style lj/cut``: 4 eps ((sigma/r)^12 - (sigma/r)^6), optionally shifted."""

    epsilon: Mapping[tuple[int, int], float]
    sigma: Mapping[tuple[int, int], float]
    lj_cutoff: float
    shift: bool

    @property
    def cutoff(self) -> float:  # type: ignore[override]
        return self.lj_cutoff

    def pair_energy(
        self, distances: np.ndarray, z_first: np.ndarray, z_second: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        keys = list(zip(z_first.tolist(), z_second.tolist(), strict=True))
        epsilon = np.array([self.epsilon[key] for key in keys])
        sigma = np.array([self.sigma[key] for key in keys])
        s6 = (sigma / distances) ** 6
        energy = 4.0 * epsilon * (s6 * s6 - s6)
        derivative = -24.0 * epsilon * (2.0 * s6 * s6 - s6) / distances
        if self.shift:
            c6 = (sigma / self.lj_cutoff) ** 6
            energy -= 4.0 * epsilon * (c6 * c6 - c6)
        return energy, derivative

    @classmethod
    def from_config(cls, baseline: LJBaseline, elements: Sequence[str]) -> LennardJonesPotential:
        """Per-pair parameters: a pair given as 'A-B' wins, else the geometric mean of A and B."""
        epsilon = _pair_table(baseline.epsilon, elements, "epsilon")
        sigma = _pair_table(baseline.sigma, elements, "sigma")
        return cls(epsilon, sigma, baseline.cutoff, baseline.shift)


def lj_pair_parameters(
    baseline: LJBaseline, elements: Sequence[str]
) -> dict[tuple[str, str], tuple[float, float]]:
    """(epsilon eV, sigma Å) for each unordered element pair, after mixing."""
    epsilon = _pair_table(baseline.epsilon, elements, "epsilon")
    sigma = _pair_table(baseline.sigma, elements, "sigma")
    pairs = {}
    for i, first in enumerate(elements):
        for second in elements[i:]:
            key = (atomic_numbers[first], atomic_numbers[second])
            pairs[(first, second)] = (epsilon[key], sigma[key])
    return pairs


def _pair_table(
    values: Mapping[str, float], elements: Sequence[str], name: str
) -> dict[tuple[int, int], float]:
    table = {}
    for first in elements:
        for second in elements:
            pair = values.get(f"{first}-{second}", values.get(f"{second}-{first}"))
            if pair is None:
                missing = [e for e in (first, second) if e not in values]
                if missing:
                    raise ValueError(
                        f"b_ref.{name} has no value for {missing[0]} (nor for the pair "
                        f"{first}-{second}); give it per element or per pair"
                    )
                pair = float(np.sqrt(values[first] * values[second]))
            table[(atomic_numbers[first], atomic_numbers[second])] = pair
    return table


def pair_potential(baseline: Baseline, elements: Sequence[str]) -> PairPotential | None:
    """The pair potential of a resolved baseline (None for no baseline)."""
    if isinstance(baseline, NoBaseline):
        return None
    if isinstance(baseline, ZBLBaseline):
        return ZBLPotential.from_baseline(baseline, elements)
    return LennardJonesPotential.from_config(baseline, elements)


class BaselineCalculator(Calculator):
    """ASE calculator of a baseline pair potential: energy, energies, forces, stress."""

    implemented_properties = ["energy", "energies", "forces", "stress"]  # noqa: RUF012

    def __init__(self, potential: PairPotential, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.potential = potential

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = tuple(all_changes),
    ) -> None:
        super().calculate(atoms, properties, system_changes)  # type: ignore[no-untyped-call]
        assert self.atoms is not None  # set by Calculator.calculate
        energy, energies, forces, stress = self.potential.evaluate(self.atoms)
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": energies,
            "forces": forces,
            "stress": stress,
        }
