"""A simulated active-learning loop on Cu-II: upfit from the previous generation against a fresh
fit of the same data and basis, per generation (wall time, held-out errors).

Usage: python benchmarks/generations.py [--data Cu-II.extxyz] [--generations 3]
       [--functions 16] [--maxiter 150] [--upfit-maxiter 50] [--workdir DIR]

A fixed 10 % of the data is held out and scores every potential. Generation 0 fits a random
30 % of the rest; each next generation adds the 15 % of the remaining structures with the
highest extrapolation grade (max gamma) under the current potential, as an explorer would find
them, and is fitted twice: ``train(new, previous=current)`` (an upfit: the accumulated data,
the parent's coefficients, at most ``--upfit-maxiter`` iterations) and a fresh fit of exactly
the upfit's training and test structures with the same basis (``--maxiter`` iterations).
The upfit chain is the current potential of the next generation.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from basis_size import held_out_metrics

from mlip_autopipec.analysis.extrapolation import extrapolation_grades
from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.rundir.files import TEST_SET, TRAINING_SET
from mlip_autopipec.infrastructure.trainer import create_trainer

REPO = Path(__file__).resolve().parent.parent


def timed_fit(config: Any, dataset: Dataset, out: Path, **kwargs: Any) -> tuple[Potential, float]:
    started = time.perf_counter()
    potential = create_trainer(config).train(dataset, out, **kwargs)
    return potential, time.perf_counter() - started


def row(label: str, potential: Potential, wall_s: float, held_out: Dataset) -> dict[str, Any]:
    metrics = held_out_metrics(potential, held_out)
    lineage, cost = potential.lineage, potential.cost
    train, test = potential.train_metrics, potential.test_metrics
    return {
        "fit": label,
        "train_structures": None if train is None else train.n_structures,
        "test_structures": None if test is None else test.n_structures,
        "fitted_from": "fresh" if lineage is None else lineage.fitted_from,
        "iterations": None if cost is None else cost.iterations,
        "wall_s": round(wall_s, 1),
        "pacemaker_s": None if cost is None or cost.fit_s is None else round(cost.fit_s, 1),
        "held_out_E": round(metrics.energy_rmse_mev_per_atom, 2),
        "held_out_F": round(metrics.force_rmse_mev_per_angstrom, 1),
        "max_gamma_added": None if lineage is None else lineage.max_gamma_added,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/Cu-II.extxyz")
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--functions", type=int, default=16)
    parser.add_argument("--maxiter", type=int, default=150)
    parser.add_argument("--upfit-maxiter", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="generations_"))
    workdir.mkdir(parents=True, exist_ok=True)

    dataset = Dataset.read(args.data)
    order = np.random.default_rng(0).permutation(len(dataset))
    n_held = len(dataset) // 10
    held_out = dataset.subset(order[:n_held].tolist())
    pool = [int(i) for i in order[n_held:]]
    n_first = int(0.3 * len(pool))
    config = parse_trainer_config(
        {
            "type": "pacemaker",
            "cutoff": 5.0,
            "ace_params": {"number_of_functions_per_element": args.functions},
            "fit": {
                "maxiter": args.maxiter,
                "upfit_maxiter": args.upfit_maxiter,
                "test_size": 0.1,
                "display_step": 50,
            },
            "threads": 2,
            "accept_failed_checks": True,  # short fits: the gate's verdict is not measured here
        }
    )
    print(
        f"Cu-II: {len(held_out)} held out, {len(pool)} in the pool; {args.functions} functions, "
        f"fresh maxiter {args.maxiter}, upfit maxiter {args.upfit_maxiter}",
        flush=True,
    )

    rows = []
    first, remaining = pool[:n_first], pool[n_first:]
    current, wall = timed_fit(config, dataset.subset(first), workdir / "gen0")
    rows.append({"generation": 0, **row("fresh", current, wall, held_out)})
    print(json.dumps(rows[-1]), flush=True)
    for generation in range(1, args.generations + 1):
        # The explorer: the structures the current potential extrapolates on most.
        grades = extrapolation_grades(current, dataset.subset(remaining))
        ranked = np.argsort([-grade.max_gamma for grade in grades])
        n_new = int(0.15 * len(remaining))
        chosen = sorted(int(i) for i in ranked[:n_new])
        new = dataset.subset([remaining[i] for i in chosen])
        remaining = [index for i, index in enumerate(remaining) if i not in set(chosen)]

        upfit_dir = workdir / f"gen{generation}_upfit"
        upfit, upfit_wall = timed_fit(config, new, upfit_dir, previous=current)
        rows.append({"generation": generation, **row("upfit", upfit, upfit_wall, held_out)})
        print(json.dumps(rows[-1]), flush=True)

        # The same training and test structures, and basis, from a random start.
        training = Dataset.read(upfit_dir / TRAINING_SET)
        test = Dataset.read(upfit_dir / TEST_SET)
        fresh, fresh_wall = timed_fit(
            config, training, workdir / f"gen{generation}_fresh", test_dataset=test
        )
        rows.append({"generation": generation, **row("fresh", fresh, fresh_wall, held_out)})
        print(json.dumps(rows[-1]), flush=True)
        current = upfit

    print()
    print(
        "| gen | fit | train/test structures | iterations | wall s | pacemaker s | "
        "held-out E meV/atom | held-out F meV/Å | max gamma added |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        gamma = "-" if r["max_gamma_added"] is None else f"{r['max_gamma_added']:.3g}"
        print(
            f"| {r['generation']} | {r['fit']} ({r['fitted_from']}) | {r['train_structures']}/"
            f"{r['test_structures']} | {r['iterations']} | {r['wall_s']} | {r['pacemaker_s']} | "
            f"{r['held_out_E']} | {r['held_out_F']} | {gamma} |"
        )
    print()
    for generation in range(1, args.generations + 1):
        up, fresh = (r for r in rows if r["generation"] == generation)
        ratio_f = up["held_out_F"] / fresh["held_out_F"]
        ratio_t = up["wall_s"] / fresh["wall_s"]
        verdict = "held" if ratio_f <= 1.05 and ratio_t <= 0.4 else "did not hold"
        print(
            f"generation {generation}: upfit held-out F / fresh = {ratio_f:.3f}, wall time "
            f"upfit / fresh = {ratio_t:.2f}: target (<= 1.05 in <= 0.4x) {verdict}"
        )
    (workdir / "generations.json").write_text(json.dumps(rows, indent=2))
    print(f"runs and generations.json in {workdir}")


if __name__ == "__main__":
    main()
