"""Cost estimate against the measured cost, and budgeted fits against their budget.

Usage:
  python benchmarks/cost_estimate.py [--maxiter 50] [--budgets 150 300] [--workdir DIR]
  python benchmarks/cost_estimate.py --from-runs RUN_DIR ...   (calibration: see below)

1. Estimate vs actual: three datasets (300 structures of Cu-II; 300 frames of ethanol MD by
   GFN2-xTB, tblite; 100 Cu-Ni-Pd EMT cells of 4 to 48 atoms) with two basis sizes each are
   fitted for ``--maxiter`` iterations, the cost always measured before the fit (pacemaker's
   short fit of a sample, ``cost_probe.py``; ``budget.PROBE_SHARE`` lifted: by default it runs
   only when that is cheap against the fit). For each: the seconds per iteration and the
   start-up estimated before the fit beside what pacemaker's log shows, and what the model
   (the fallback) would have said.
2. Budget: the demo's EMT Cu-Pt set is fitted with ``fit.time_budget`` (basis left open, the
   default rules for measuring) and the wall time of the whole training is printed against
   the budget.

``--from-runs`` prints, for finished run directories, the factor K of the cost model (µs per
training atom, neighbour and square root of the number of functions, see ``cost.py``) that
their measured seconds per iteration imply: ``cost.US_PER_ATOM_NEIGHBOUR`` was set from such
runs. The machine's load changes every timing; on a shared machine the figures are noisy.
"""

from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tblite: one thread is fastest for molecules
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
from mlip_autopipec.infrastructure.pacemaker.data_file import read_dataset
from mlip_autopipec.infrastructure.pacemaker.log import read_fit_timing
from mlip_autopipec.infrastructure.rundir.files import DATA_FILE
from mlip_autopipec.infrastructure.trainer import create_trainer
from mlip_autopipec.infrastructure.trainer.cost import budget
from mlip_autopipec.infrastructure.trainer.cost import estimate as cost

REPO = Path(__file__).resolve().parent.parent


def datasets(cu_ii_path: Path) -> dict[str, Dataset]:
    from selection_cost import emt_ternary  # benchmarks/ is on sys.path when run as a script

    from mlip_autopipec.oracle.xtb import md_frames

    cu_ii = Dataset.read(cu_ii_path)
    order = np.random.default_rng(1).permutation(len(cu_ii))
    return {
        "Cu-II 300": cu_ii.subset(order[:300].tolist()),
        "ethanol": Dataset.from_atoms(
            md_frames("CH3CH2OH", 300, steps_between=3, seed=0), source="xTB MD"
        ),
        "EMT-3": emt_ternary(100, seed=5),
    }


SIZES = {"Cu-II 300": (30, 150), "ethanol": (24, 96), "EMT-3": (24, 96)}


def estimate_vs_actual(data: dict[str, Dataset], maxiter: int, workdir: Path) -> None:
    budget.PROBE_SHARE = math.inf  # always time the basis on the data here
    print(f"1. estimate vs actual, {maxiter} iterations, test_size 0.1, {os.cpu_count()} cores")
    print(
        f"{'data':<9} {'atoms':>5} {'f/el':>4} {'funcs':>5} {'probe s':>7} "
        f"{'s/it est':>8} {'s/it act':>8} {'ratio':>5} {'model':>6} {'ratio':>5} "
        f"{'start est':>9} {'act':>4} {'load':>4}"
    )
    for name, dataset in data.items():
        for functions in SIZES[name]:
            config = parse_trainer_config(
                {
                    "type": "pacemaker",
                    "cutoff": 5.0,
                    "ace_params": {"number_of_functions_per_element": functions},
                    "fit": {"maxiter": maxiter, "display_step": 20},
                    "accept_failed_checks": True,  # short fits: timed here, not deployed
                }
            )
            run = workdir / f"{name.replace(' ', '_')}_{functions}"
            load = os.getloadavg()[0]  # before the fit: the other work on the machine
            if (run / "potential.json").exists():  # finished before: reported again
                potential, load = Potential.load(run), float("nan")
            else:
                potential = create_trainer(config).train(dataset, run)
            fit_cost = potential.cost
            assert fit_cost is not None and fit_cost.s_per_iteration is not None
            model = _model(run)
            estimated = fit_cost.estimated_s_per_iteration
            probe_s = _probe_seconds(fit_cost.estimate_note)
            print(
                f"{name:<9} {dataset.n_atoms:5d} {functions:4d} "
                f"{_total_functions(run):5d} {probe_s:7.0f} "
                f"{estimated:8.3f} {fit_cost.s_per_iteration:8.3f} "
                f"{fit_cost.s_per_iteration / estimated:5.2f} {model:6.3f} "
                f"{fit_cost.s_per_iteration / model:5.2f} "
                f"{fit_cost.estimated_startup_s or float('nan'):9.0f} "
                f"{fit_cost.startup_s or float('nan'):4.0f} {load:4.1f}",
                flush=True,
            )


def _model(run: Path) -> float:
    """What the model (the fallback) estimates for a finished run, at the load of now."""
    config: dict[str, Any] = yaml.safe_load((run / "input.yaml").read_text())
    test_size = float(config["data"].get("test_size", 0.0))
    dataset = read_dataset(run / DATA_FILE)
    threads = os.cpu_count() or 1
    estimate = cost.estimate_cost(
        config["potential"], dataset, test_size=test_size, threads=threads
    )
    return estimate.seconds_per_iteration


def _probe_seconds(note: str | None) -> float:
    """The probe's wall time from the estimate's note ('... functions, in 41 s')."""
    if not note or "functions, in " not in note:
        return float("nan")
    return float(note.split("functions, in ")[1].split(" s")[0])


def _total_functions(run: Path) -> int:
    potential = yaml.safe_load((run / "input.yaml").read_text())["potential"]
    count = potential["functions"]["number_of_functions_per_element"]
    n = len(potential["elements"])
    return int(count // 2 ** (n - 1) * n * 2 ** (n - 1))


def budgeted(dataset: Dataset, budgets: list[float], workdir: Path) -> None:
    print("2. budgeted fits of the EMT Cu-Pt set (basis left open): wall time vs budget")
    print(
        f"{'budget s':>8} {'wall s':>7} {'over %':>7} {'f/el':>5} {'planned':>7} {'done':>5} "
        f"{'s/it':>6} {'stopped':>7} {'estimate':>8} {'load':>4}"
    )
    for seconds in budgets:
        config = parse_trainer_config(
            {
                "type": "pacemaker",
                "cutoff": 5.0,
                "fit": {"time_budget": seconds},
                "accept_failed_checks": True,
            }
        )
        run = workdir / f"budget_{seconds:g}"
        load = os.getloadavg()[0]
        started = time.perf_counter()
        try:
            potential = create_trainer(config).train(dataset, run)
        except ConfigurationError as error:  # a budget below the estimated start-up
            print(f"{seconds:8.0f}  refused: {error.problems[0][1]}", flush=True)
            continue
        wall = time.perf_counter() - started
        fit_cost = potential.cost
        assert fit_cost is not None
        functions = yaml.safe_load((run / "input.yaml").read_text())["potential"]["functions"]
        print(
            f"{seconds:8.0f} {wall:7.0f} {100 * (wall - seconds) / seconds:7.1f} "
            f"{functions['number_of_functions_per_element']:5d} "
            f"{fit_cost.estimated_iterations:7d} {fit_cost.iterations or 0:5d} "
            f"{fit_cost.s_per_iteration or float('nan'):6.3f} "
            f"{'yes' if fit_cost.stopped_at_budget else 'no':>7} "
            f"{fit_cost.estimate_method or '-':>8} {load:4.1f}",
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
    parser.add_argument("--maxiter", type=int, default=50)
    parser.add_argument("--budgets", type=float, nargs="*", default=[150.0, 300.0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--from-runs", type=Path, nargs="*", default=None)
    parser.add_argument("--skip-estimates", action="store_true")
    args = parser.parse_args()
    if args.from_runs:
        from_runs(args.from_runs)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cost_estimate_"))
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.skip_estimates:
        share = budget.PROBE_SHARE
        estimate_vs_actual(datasets(args.data), args.maxiter, workdir)
        budget.PROBE_SHARE = share  # the budgeted fits measure by the default rule
    budgeted(demo_dataset(), args.budgets, workdir)
    print(f"run directories: {workdir}")


if __name__ == "__main__":
    main()
