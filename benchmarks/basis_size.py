"""Learning curve behind the default basis size: held-out force RMSE against basis size.

Usage: python benchmarks/basis_size.py [--maxiter 150] [--workdir DIR] [--plot docs/basis_size.png]

Two datasets, each with a fixed held-out set evaluated with the potential's ASE calculator:

- Cu-II (one element): 150 structures of ../shared/data/Cu-II.extxyz for training, 100 others
  held out;
- EMT-5 (five elements, Cu Ni Pd Ag Au): 40 random fcc alloy cells of 32 atoms (strained,
  rattled, labelled with ASE's EMT) for training, 15 others held out.

Each is fitted with several ``number_of_functions_per_element`` at equal iterations; the table
gives the functions per species block (what pacemaker actually fits: it shares each element's
functions over the 2**(n-1) blocks an element takes part in), the held-out errors and the time.
Held-out structures with an element pair closer than any in the training set are left out:
there the fit's short-range core acts, not the basis. A finished run directory in ``--workdir``
is evaluated again rather than refitted (its wall time is then the pacemaker run's).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase.build import bulk

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset, shortest_distances
from mlip_autopipec.domain_models.metrics import FitMetrics, metrics_from_errors, rmse_mae_mev
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.trainer import create_trainer
from mlip_autopipec.oracle.emt import label_with_emt

REPO = Path(__file__).resolve().parent.parent
EMT_ELEMENTS = ("Ag", "Au", "Cu", "Ni", "Pd")
LATTICE = {"Ag": 4.09, "Au": 4.08, "Cu": 3.61, "Ni": 3.52, "Pd": 3.89}  # Å, fcc


def emt_alloys(count: int, seed: int) -> Dataset:
    """Random five-element fcc alloy cells (32 atoms), strained by up to 3 % and rattled."""
    rng = np.random.default_rng(seed)
    structures = []
    for index in range(count):
        symbols = rng.choice(EMT_ELEMENTS, size=32)
        lattice = float(np.mean([LATTICE[s] for s in symbols])) * rng.uniform(0.97, 1.03)
        atoms = bulk("Cu", "fcc", a=lattice, cubic=True).repeat((2, 2, 2))
        atoms.symbols = list(symbols)
        atoms.rattle(rng.uniform(0.03, 0.15), seed=int(rng.integers(1 << 31)))
        atoms.info["name"] = f"emt5_{seed}_{index}"
        structures.append(atoms)
    return label_with_emt(structures, source="EMT five-element alloys")


def cu_ii(path: Path, n_train: int, n_test: int) -> tuple[Dataset, Dataset]:
    dataset = Dataset.read(path)
    order = np.random.default_rng(0).permutation(len(dataset))
    return (
        dataset.subset(order[n_test : n_test + n_train].tolist()),
        dataset.subset(order[:n_test].tolist()),
    )


def within_training_distances(test: Dataset, train: Dataset) -> Dataset:
    """The test structures with no element pair closer than in the training set: closer pairs
    meet the fit's short-range core (or a baseline), not ACE, which this benchmark measures."""
    shortest = shortest_distances(train, search_radius=5.0)
    keep = []
    for index in range(len(test)):
        mine = shortest_distances(test.subset([index]), search_radius=5.0)
        if all(distance >= shortest.get(pair, 0.0) for pair, distance in mine.items()):
            keep.append(index)
    return test.subset(keep)


def held_out_metrics(potential: Potential, test: Dataset) -> FitMetrics:
    calculator = potential.ase_calculator()
    energy_errors, force_errors = [], []
    for structure in test:
        atoms = structure.atoms.copy()
        atoms.calc = calculator
        energy_errors.append((atoms.get_potential_energy() - structure.energy) / len(atoms))
        force_errors.append(atoms.get_forces() - structure.forces)
    return metrics_from_errors(np.array(energy_errors), np.vstack(force_errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/Cu-II.extxyz")
    parser.add_argument("--maxiter", type=int, default=150)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "basis_size.png")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="basis_size_"))
    workdir.mkdir(parents=True, exist_ok=True)

    cu_train, cu_test = cu_ii(args.data, 150, 100)
    emt_train, emt_test = emt_alloys(40, seed=1), emt_alloys(15, seed=2)
    cu_test = within_training_distances(cu_test, cu_train)
    emt_test = within_training_distances(emt_test, emt_train)
    print(f"held out: {len(cu_test)} Cu-II, {len(emt_test)} EMT-5 structures")
    cases: list[tuple[str, Dataset, Dataset, list[int]]] = [
        ("Cu-II", cu_train, cu_test, [8, 24, 80, 240]),
        ("EMT-5", emt_train, emt_test, [16, 48, 112]),
    ]
    rows: list[dict[str, Any]] = []
    print(f"maxiter {args.maxiter}; errors on the held-out structures (ASE calculator)")
    print(
        f"{'data':<6} {'atoms':>6} {'func/el':>7} {'func/block':>10} {'total':>6} "
        f"{'E meV/at':>9} {'F meV/Å':>8} {'F raw':>7} {'wall s':>7}"
    )
    for name, train, test, sizes in cases:
        n_elements = len(train.elements)
        raw_force = rmse_mae_mev(np.vstack([s.forces for s in test]))[0]
        for functions in sizes:
            config = parse_trainer_config(
                {
                    "type": "pacemaker",
                    "cutoff": 5.0,
                    "ace_params": {"number_of_functions_per_element": functions},
                    "fit": {"maxiter": args.maxiter, "test_size": 0.0, "display_step": 25},
                }
            )
            run = workdir / f"{name}_{functions}"
            started = time.perf_counter()
            if (run / "potential.json").exists():  # a finished run is evaluated again
                potential = Potential.load(run)
                cost = potential.cost
                wall = float("nan") if cost is None or cost.fit_s is None else cost.fit_s
            else:
                potential = create_trainer(config).train(train, run)
                wall = time.perf_counter() - started
            metrics = held_out_metrics(potential, test)
            per_block = functions // 2 ** (n_elements - 1)
            total = per_block * n_elements * 2 ** (n_elements - 1)
            row = {
                "data": name,
                "atoms": train.n_atoms,
                "functions_per_element": functions,
                "functions_per_block": per_block,
                "total_functions": total,
                "energy_rmse": metrics.energy_rmse_mev_per_atom,
                "force_rmse": metrics.force_rmse_mev_per_angstrom,
                "raw_force_rms": raw_force,
                "wall_s": wall,
            }
            rows.append(row)
            print(
                f"{name:<6} {train.n_atoms:6d} {functions:7d} {per_block:10d} {total:6d} "
                f"{metrics.energy_rmse_mev_per_atom:9.2f} "
                f"{metrics.force_rmse_mev_per_angstrom:8.1f} {raw_force:7.0f} {wall:7.0f}",
                flush=True,
            )
    (workdir / "basis_size.json").write_text(json.dumps(rows, indent=1))
    plot(rows, args.plot)
    print(f"plot: {args.plot}; run directories: {workdir}")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 3.8))
    for name in dict.fromkeys(row["data"] for row in rows):
        mine = [row for row in rows if row["data"] == name]
        axes.plot(
            [row["total_functions"] / row["atoms"] for row in mine],
            [row["force_rmse"] / row["raw_force_rms"] for row in mine],
            "o-",
            label=f"{name} ({mine[0]['atoms']} atoms)",
        )
        for row in mine:
            axes.annotate(
                f"{row['functions_per_block']}/block",
                (row["total_functions"] / row["atoms"], row["force_rmse"] / row["raw_force_rms"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    axes.set_xscale("log")
    axes.set_xlabel("basis functions per training atom")
    axes.set_ylabel("held-out force RMSE / raw force RMS")
    axes.set_title("equal iterations; labels: functions per species block", fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
