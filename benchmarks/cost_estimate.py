"""Cost estimate against the measured cost, and budgeted fits against their budget.

Usage:
  python benchmarks/cost_estimate.py [--maxiter 40] [--budgets 100 200] [--workdir DIR]
  python benchmarks/cost_estimate.py --from-runs RUN_DIR ...   (calibration: see below)

1. Estimate vs actual: three datasets (the demo's EMT Cu-Pt set, 300 structures of Cu-II, 20
   five-element EMT alloy cells) with two basis sizes each are fitted for ``--maxiter``
   iterations; for each, the seconds per iteration and the start-up estimated before the fit
   are printed beside what pacemaker's log shows.
2. Budget: the demo set is fitted with ``fit.time_budget`` (basis left open) and the wall time
   of the whole training is printed against the budget.

``--from-runs`` prints, for finished run directories, the factor K of the cost model (µs per
training atom, neighbour and square root of the number of functions, see ``cost.py``) that
their measured seconds per iteration imply: ``cost.US_PER_ATOM_NEIGHBOUR`` was set from such
runs. The machine's load changes every
timing; on a shared machine the figures are noisy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.demo import demo_dataset
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.trainer import cost, create_trainer
from mlip_autopipec.infrastructure.trainer.base import DATA_FILE
from mlip_autopipec.infrastructure.trainer.data_file import read_dataset
from mlip_autopipec.infrastructure.trainer.pacemaker_log import read_fit_timing

REPO = Path(__file__).resolve().parent.parent


def datasets(cu_ii_path: Path) -> dict[str, Dataset]:
    from basis_size import emt_alloys  # benchmarks/ is on sys.path when run as a script

    cu_ii = Dataset.read(cu_ii_path)
    order = np.random.default_rng(1).permutation(len(cu_ii))
    return {
        "EMT Cu-Pt": demo_dataset(),
        "Cu-II 300": cu_ii.subset(order[:300].tolist()),
        "EMT-5": emt_alloys(20, seed=3),
    }


SIZES = {"EMT Cu-Pt": (16, 64), "Cu-II 300": (30, 150), "EMT-5": (16, 32)}


def estimate_vs_actual(data: dict[str, Dataset], maxiter: int, workdir: Path) -> None:
    print(f"1. estimate vs actual, {maxiter} iterations, test_size 0.1, {os.cpu_count()} cores")
    print(
        f"{'data':<10} {'atoms':>6} {'f/el':>5} {'funcs':>5} {'s/it est':>8} {'s/it act':>8} "
        f"{'ratio':>6} {'start est':>9} {'start act':>9} {'load':>5}"
    )
    for name, dataset in data.items():
        for functions in SIZES[name]:
            config = parse_trainer_config(
                {
                    "type": "pacemaker",
                    "cutoff": 5.0,
                    "ace_params": {"number_of_functions_per_element": functions},
                    "fit": {"maxiter": maxiter, "display_step": 20},
                }
            )
            run = workdir / f"{name.replace(' ', '_')}_{functions}"
            load = os.getloadavg()[0]  # before the fit: the other work on the machine
            if (run / "potential.json").exists():  # finished before: reported again
                potential, load = Potential.load(run), float("nan")
            else:
                potential = create_trainer(config).train(dataset, run)
            cost = potential.cost
            assert cost is not None and cost.s_per_iteration is not None
            estimated_startup = cost.estimated_startup_s or float("nan")
            actual_startup = cost.startup_s
            print(
                f"{name:<10} {dataset.n_atoms:6d} {functions:5d} "
                f"{_total_functions(run):5d} {cost.estimated_s_per_iteration:8.3f} "
                f"{cost.s_per_iteration:8.3f} "
                f"{cost.s_per_iteration / cost.estimated_s_per_iteration:6.2f} "
                f"{estimated_startup:9.0f} {actual_startup or float('nan'):9.0f} {load:5.1f}",
                flush=True,
            )


def _total_functions(run: Path) -> int:
    potential = yaml.safe_load((run / "input.yaml").read_text())["potential"]
    count = potential["functions"]["number_of_functions_per_element"]
    n = len(potential["elements"])
    return int(count // 2 ** (n - 1) * n * 2 ** (n - 1))


def budgeted(dataset: Dataset, budgets: list[float], workdir: Path) -> None:
    print("2. budgeted fits of the EMT Cu-Pt set (basis left open): wall time vs budget")
    print(
        f"{'budget s':>8} {'wall s':>7} {'over %':>7} {'f/el':>5} {'planned':>7} {'done':>5} "
        f"{'s/it':>6} {'stopped':>7}"
    )
    for budget in budgets:
        config = parse_trainer_config(
            {"type": "pacemaker", "cutoff": 5.0, "fit": {"time_budget": budget}}
        )
        run = workdir / f"budget_{budget:g}"
        started = time.perf_counter()
        try:
            potential = create_trainer(config).train(dataset, run)
        except ConfigurationError as error:  # a budget below the estimated start-up
            print(f"{budget:8.0f}  refused: {error.problems[0][1]}", flush=True)
            continue
        wall = time.perf_counter() - started
        cost = potential.cost
        assert cost is not None
        functions = yaml.safe_load((run / "input.yaml").read_text())["potential"]["functions"]
        print(
            f"{budget:8.0f} {wall:7.0f} {100 * (wall - budget) / budget:7.1f} "
            f"{functions['number_of_functions_per_element']:5d} {cost.estimated_iterations:7d} "
            f"{cost.iterations or 0:5d} {cost.s_per_iteration or float('nan'):6.3f} "
            f"{'yes' if cost.stopped_at_budget else 'no':>7}",
            flush=True,
        )


def from_runs(runs: list[Path]) -> None:
    """K (µs per atom, neighbour and sqrt(function)) that each finished run implies, taking
    the runs to have had the calibration's contention (the load then is not known now)."""
    cost.contention = lambda threads: cost.CALIBRATION_CONTENTION  # type: ignore[assignment]
    print(f"{'run':<32} {'atoms':>6} {'neigh':>6} {'funcs':>6} {'s/it act':>8} {'K':>6}")
    values = []
    for run in runs:
        timing = read_fit_timing(run / "pacemaker.log")
        config: dict[str, Any] = yaml.safe_load((run / "input.yaml").read_text())
        test_size = float(config["data"].get("test_size", 0.0))
        dataset = read_dataset(run / DATA_FILE)
        estimate = cost.estimate_cost(
            config["potential"], dataset, test_size=test_size, threads=cost.CALIBRATION_THREADS
        )
        if timing.seconds_per_iteration is None:
            continue
        values.append(
            cost.US_PER_ATOM_NEIGHBOUR
            * timing.seconds_per_iteration
            / estimate.seconds_per_iteration
        )
        print(
            f"{str(run)[-32:]:<32} {estimate.fitted_atoms:6d} {estimate.mean_neighbours:6.1f} "
            f"{estimate.total_functions:6d} {timing.seconds_per_iteration:8.3f} {values[-1]:6.2f}"
        )
    print(f"median K {np.median(values):.2f} µs (min {min(values):.2f}, max {max(values):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/Cu-II.extxyz")
    parser.add_argument("--maxiter", type=int, default=40)
    parser.add_argument("--budgets", type=float, nargs="*", default=[100.0, 200.0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--from-runs", type=Path, nargs="*", default=None)
    parser.add_argument("--skip-estimates", action="store_true")
    args = parser.parse_args()
    if args.from_runs:
        from_runs(args.from_runs)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cost_estimate_"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = datasets(args.data)
    if not args.skip_estimates:
        estimate_vs_actual(data, args.maxiter, workdir)
    budgeted(data["EMT Cu-Pt"], args.budgets, workdir)
    print(f"run directories: {workdir}")


if __name__ == "__main__":
    main()
