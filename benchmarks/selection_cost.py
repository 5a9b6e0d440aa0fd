"""D-optimal against random training subsets at equal cost: equal atoms and equal wall time.

Usage: python benchmarks/selection_cost.py [--atoms 1000] [--functions 16] [--budget 200]
       [--seeds 2] [--datasets Cu-II EMT-3] [--workdir DIR]

Two datasets: ../shared/data/Cu-II.extxyz (one element, structures of 1 to 100+ atoms) and
EMT-3, 400 random Cu-Ni-Pd fcc cells of 4 to 48 atoms (strained, rattled, labelled with ASE's
EMT). For every seed, 10 % of the dataset is held out (drawn with that seed); from the rest,
``active_set.max_atoms`` selects D-optimal structures holding at most ``--atoms`` atoms, and a
random subset (the same seed) is drawn until it holds as many atoms. Both are fitted with the
same basis and the same ``fit.time_budget``, which covers the whole training, pace_select
included: equal atoms (about equal seconds per iteration) and equal wall time. ``maxiter`` is
left open, so the budget ends each fit; the iterations each reached are printed, and whether
the fit had converged (its loss no longer falling by 2 % over its last fifth). Every
potential is evaluated on the same held-out structures: those with no pair closer than in
either training set (closer pairs meet the short-range core, not ACE). A run directory that
holds a finished fit is evaluated again, not fitted again (its wall time is not known then).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase.build import bulk
from basis_size import held_out_metrics, within_training_distances

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.trainer import create_trainer
from mlip_autopipec.oracle.emt import label_with_emt

REPO = Path(__file__).resolve().parent.parent
EMT3_LATTICE = {"Cu": 3.61, "Ni": 3.52, "Pd": 3.89}  # Å, fcc
#: Repetitions of the 4-atom cubic fcc cell: 4 to 48 atoms.
EMT3_REPEATS = ((1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2), (3, 2, 2))


def emt_ternary(count: int, seed: int) -> Dataset:
    """Random Cu-Ni-Pd fcc cells of 4 to 48 atoms, strained by up to 3 % and rattled."""
    rng = np.random.default_rng(seed)
    elements = list(EMT3_LATTICE)
    structures = []
    for index in range(count):
        repeat = EMT3_REPEATS[int(rng.integers(len(EMT3_REPEATS)))]
        atoms = bulk("Cu", "fcc", a=1.0, cubic=True).repeat(repeat)
        symbols = rng.choice(elements, size=len(atoms))
        lattice = float(np.mean([EMT3_LATTICE[s] for s in symbols])) * rng.uniform(0.97, 1.03)
        atoms.set_cell(atoms.cell * lattice, scale_atoms=True)
        atoms.symbols = list(symbols)
        atoms.rattle(rng.uniform(0.03, 0.2), seed=int(rng.integers(1 << 31)))
        atoms.info["name"] = f"emt3_{seed}_{index}"
        structures.append(atoms)
    return label_with_emt(structures, source="EMT Cu-Ni-Pd alloys")


def random_subset(pool: Dataset, atoms: int, seed: int) -> Dataset:
    """Random structures of ``pool`` until the next one would exceed ``atoms`` atoms."""
    chosen, total = [], 0
    for index in np.random.default_rng(seed).permutation(len(pool)):
        size = len(pool[int(index)].atoms)
        if total + size > atoms:
            continue
        chosen.append(int(index))
        total += size
    return pool.subset(sorted(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/Cu-II.extxyz")
    parser.add_argument("--atoms", type=int, default=1000)
    parser.add_argument("--functions", type=int, default=16, help="per element")
    parser.add_argument("--budget", type=float, default=200.0, help="s per training")
    parser.add_argument("--maxiter", type=int, default=None, help="equal iterations, no budget")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--datasets", nargs="+", default=["Cu-II", "EMT-3"])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="selection_cost_"))
    data = {"Cu-II": lambda: Dataset.read(args.data), "EMT-3": lambda: emt_ternary(400, seed=7)}

    print(
        f"subsets of <= {args.atoms} atoms; {args.functions} functions per element; "
        + (
            f"maxiter {args.maxiter} (equal iterations); "
            if args.maxiter
            else f"time_budget {args.budget:g} s per training (selection included); "
        )
        + f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the start"
    )
    print(
        f"{'data':<6} {'seed':>4} {'method':<9} {'structs':>7} {'atoms':>6} {'held out':>8} "
        f"{'E meV/atom':>10} {'F meV/Å':>8} {'iters':>5} {'s/iter':>7} {'wall s':>7} "
        f"{'load':>5} {'converged':>9}"
    )
    for name in args.datasets:
        dataset = data[name]()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            order = np.random.default_rng(seed).permutation(len(dataset))
            n_test = len(dataset) // 10
            test = dataset.subset(order[:n_test].tolist())
            pool = dataset.subset(order[n_test:].tolist())
            base: dict[str, Any] = {
                "type": "pacemaker",
                "cutoff": 5.0,
                "ace_params": {"number_of_functions_per_element": args.functions},
                "fit": {"test_size": 0.0, "display_step": 50}
                | ({"maxiter": args.maxiter} if args.maxiter else {"time_budget": args.budget}),
                "accept_failed_checks": True,  # errors are measured here, not deployment
            }
            selecting = base | {"active_set": {"enabled": True, "max_atoms": args.atoms}}
            runs = [
                ("D-optimal", pool, selecting),
                ("random", random_subset(pool, args.atoms, seed=100 + seed), base),
            ]
            fitted = []
            for method, subset, settings in runs:
                run = workdir / f"{name}_{seed}_{method}"
                load, wall = os.getloadavg()[0], float("nan")
                if (run / "potential.json").exists():  # fitted before: evaluated again
                    potential, load = Potential.load(run), float("nan")
                else:
                    started = time.perf_counter()
                    try:
                        potential = create_trainer(parse_trainer_config(settings)).train(
                            subset, run
                        )
                    except ConfigurationError as error:  # the budget left no iteration
                        print(f"{name:<6} {seed:4d} {method:<9} refused: {error}", flush=True)
                        continue
                    wall = time.perf_counter() - started
                selected = potential.selection
                trained_on = subset if selected is None else subset.subset(selected.indices)
                fitted.append((method, potential, trained_on, wall, load))
            # One held-out set for both: what neither training set is closer than.
            held_out = test
            for _, _, trained_on, _, _ in fitted:
                held_out = within_training_distances(held_out, trained_on)
            for method, potential, trained_on, wall, load in fitted:
                metrics = held_out_metrics(potential, held_out)
                cost = potential.cost
                iterations = 0 if cost is None else cost.iterations or 0
                per_iteration = float("nan")
                if cost is not None and cost.s_per_iteration is not None:
                    per_iteration = cost.s_per_iteration
                print(
                    f"{name:<6} {seed:4d} {method:<9} {len(trained_on):7d} "
                    f"{trained_on.n_atoms:6d} {len(held_out):8d} "
                    f"{metrics.energy_rmse_mev_per_atom:10.2f} "
                    f"{metrics.force_rmse_mev_per_angstrom:8.2f} {iterations:5d} "
                    f"{per_iteration:7.3f} {wall:7.0f} {load:5.1f} "
                    f"{'no' if cost and cost.still_improving else 'yes':>9}",
                    flush=True,
                )
    print(f"run directories: {workdir}")


if __name__ == "__main__":
    main()
