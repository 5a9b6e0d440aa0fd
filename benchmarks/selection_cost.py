"""D-optimal against random training subsets of the same number of atoms (equal cost) on Cu-II.

Usage: python benchmarks/selection_cost.py [--atoms 1500] [--functions 24] [--maxiter 150]
       [--seeds 2] [--workdir DIR]

A fixed 10 % of ../shared/data/Cu-II.extxyz is held out. From the rest, ``active_set.max_atoms``
selects D-optimal structures holding at most ``--atoms`` atoms; random subsets are drawn
(several seeds) until they hold as many atoms. Every subset is fitted with the same settings,
so each iteration costs about the same, and evaluated on the held-out structures (those with no
pair closer than in the subset, where the short-range core would act instead of ACE).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from basis_size import held_out_metrics, within_training_distances

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.infrastructure.trainer import create_trainer

REPO = Path(__file__).resolve().parent.parent


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
    parser.add_argument("--atoms", type=int, default=1500)
    parser.add_argument("--functions", type=int, default=24)
    parser.add_argument("--maxiter", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="selection_cost_"))

    dataset = Dataset.read(args.data)
    order = np.random.default_rng(0).permutation(len(dataset))
    n_test = len(dataset) // 10
    test, pool = dataset.subset(order[:n_test].tolist()), dataset.subset(order[n_test:].tolist())
    base: dict[str, Any] = {
        "type": "pacemaker",
        "cutoff": 5.0,
        "ace_params": {"number_of_functions_per_element": args.functions},
        "fit": {"maxiter": args.maxiter, "test_size": 0.0, "display_step": 50},
    }
    print(
        f"Cu-II: {len(pool)} candidates ({pool.n_atoms} atoms), {len(test)} held out; "
        f"subsets of <= {args.atoms} atoms; {args.functions} functions, maxiter {args.maxiter}"
    )
    print(
        f"{'training set':<22} {'structs':>7} {'atoms':>6} {'held out':>8} "
        f"{'E meV/atom':>10} {'F meV/Å':>8} {'s/iter':>7} {'wall s':>7}"
    )

    def fit(label: str, subset: Dataset, settings: dict[str, Any], run: Path) -> None:
        started = time.perf_counter()
        potential = create_trainer(parse_trainer_config(settings)).train(subset, run)
        wall = time.perf_counter() - started
        trained_on = (
            subset if potential.selection is None else subset.subset(potential.selection.indices)
        )
        held_out = within_training_distances(test, trained_on)
        metrics = held_out_metrics(potential, held_out)
        cost = potential.cost
        per_iteration = float("nan") if cost is None else cost.s_per_iteration or float("nan")
        print(
            f"{label:<22} {len(trained_on):7d} {trained_on.n_atoms:6d} {len(held_out):8d} "
            f"{metrics.energy_rmse_mev_per_atom:10.2f} "
            f"{metrics.force_rmse_mev_per_angstrom:8.2f} {per_iteration:7.3f} {wall:7.0f}",
            flush=True,
        )

    selecting = base | {"active_set": {"enabled": True, "max_atoms": args.atoms}}
    fit("D-optimal (max_atoms)", pool, selecting, workdir / "doptimal")
    for seed in range(args.seeds):
        subset = random_subset(pool, args.atoms, seed=100 + seed)
        fit(f"random (seed {seed})", subset, base, workdir / f"random_{seed}")
    print(f"run directories: {workdir}")


if __name__ == "__main__":
    main()
