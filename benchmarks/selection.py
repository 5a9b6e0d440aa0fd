"""D-optimal against random training subsets on Cu-II: test errors and training time.

Usage: python benchmarks/selection.py [--functions 40] [--maxiter 40] [--seeds 3]

A fixed 10 % of ../shared/data/Cu-II.extxyz is held out as the test set. With identical fit
settings the potential is trained on all the rest, on D-optimal subsets of 20 % and 40 %
(pace_select, as `trainer.active_set` does it) and on random subsets of the same sizes
(several seeds). Each is evaluated on the held-out structures with its ASE calculator.
Also printed: the largest extrapolation grade of the held-out structures under the full fit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlip_autopipec.analysis.extrapolation import extrapolation_grades
from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.metrics import FitMetrics, metrics_from_errors
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.trainer import create_trainer

REPO = Path(__file__).resolve().parent.parent


def held_out_metrics(potential: Potential, test: Dataset) -> FitMetrics:
    calculator = potential.ase_calculator()
    energy_errors, force_errors = [], []
    for structure in test:
        atoms = structure.atoms.copy()
        atoms.calc = calculator
        energy_errors.append((atoms.get_potential_energy() - structure.energy) / len(atoms))
        force_errors.append(atoms.get_forces() - structure.forces)
    return metrics_from_errors(np.array(energy_errors), np.vstack(force_errors))


def train(pool: Dataset, settings: dict[str, Any], out: Path) -> tuple[Potential, float]:
    config = parse_trainer_config(settings)
    started = time.perf_counter()
    potential = create_trainer(config).train(pool, out)
    return potential, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/Cu-II.extxyz")
    parser.add_argument("--functions", type=int, default=40)
    parser.add_argument("--maxiter", type=int, default=40)
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="selection_"))

    dataset = Dataset.read(args.data)
    order = np.random.default_rng(0).permutation(len(dataset))
    n_test = len(dataset) // 10
    test, pool = dataset.subset(order[:n_test].tolist()), dataset.subset(order[n_test:].tolist())
    base: dict[str, Any] = {
        "type": "pacemaker",
        "cutoff": args.cutoff,
        "ace_params": {"number_of_functions_per_element": args.functions},
        "fit": {"maxiter": args.maxiter, "test_size": 0.0, "seed": 42},
    }
    print(
        f"{len(pool)} training candidates, {len(test)} held out; {args.functions} "
        f"functions/element, maxiter {args.maxiter}; test RMSE on the held-out set"
    )
    print(f"{'training set':<26} {'n':>5} {'E meV/atom':>11} {'F meV/Å':>9} {'wall s':>7}")

    def report(label: str, potential: Potential, wall: float, n: int) -> FitMetrics:
        metrics = held_out_metrics(potential, test)
        print(
            f"{label:<26} {n:5d} {metrics.energy_rmse_mev_per_atom:11.2f} "
            f"{metrics.force_rmse_mev_per_angstrom:9.2f} {wall:7.0f}",
            flush=True,
        )
        return metrics

    full, wall = train(pool, base, workdir / "full")
    report("all", full, wall, len(pool))
    for fraction in (0.2, 0.4):
        settings = base | {"active_set": {"enabled": True, "fraction": fraction}}
        selected, wall = train(pool, settings, workdir / f"doptimal_{fraction}")
        assert selected.selection is not None
        report(f"D-optimal {fraction:.0%}", selected, wall, selected.selection.n_selected)
        randoms = []
        for seed in range(args.seeds):
            size = selected.selection.n_selected
            indices = np.random.default_rng(100 + seed).choice(len(pool), size, replace=False)
            subset = pool.subset(sorted(indices.tolist()))
            potential, wall = train(subset, base, workdir / f"random_{fraction}_{seed}")
            randoms.append(report(f"random {fraction:.0%} (seed {seed})", potential, wall, size))
        print(
            f"{'random ' + format(fraction, '.0%') + ' mean':<26} {'':>5} "
            f"{np.mean([m.energy_rmse_mev_per_atom for m in randoms]):11.2f} "
            f"{np.mean([m.force_rmse_mev_per_angstrom for m in randoms]):9.2f}"
        )

    grades = extrapolation_grades(full, test)
    worst = max(grades, key=lambda grade: grade.max_gamma)
    outside = sum(grade.max_gamma > 1 for grade in grades)
    print(
        f"held-out structures under the full fit: max gamma {worst.max_gamma:.2f} "
        f"({worst.name}); {outside} of {len(grades)} above 1"
    )
    print(f"run directories: {workdir}")


if __name__ == "__main__":
    main()
