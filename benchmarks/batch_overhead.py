"""Wall time of a fit run as a SLURM batch job against the same fit run locally.

Usage: python benchmarks/batch_overhead.py [--partition debug] [--maxiter 100]

Needs a SLURM that answers here (tests/cluster/start_slurm.sh starts one on this machine). Both
fits use the demo's EMT Cu-Pt dataset (85 structures), 40 functions per element, the same seed
and threads, one after the other: first `train` with the default local execution, then with
`execution: {type: slurm}`, which submits, follows the job (the queue is asked every
--poll seconds) and post-processes on this machine. The difference is the batch path's overhead:
submission, queue wait on an idle cluster, the job's Python start-up, polling latency.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.demo import demo_dataset
from mlip_autopipec.infrastructure.trainer import create_trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partition", default=None, help="SLURM partition (default: default)")
    parser.add_argument("--maxiter", type=int, default=100)
    parser.add_argument("--poll", type=float, default=10.0, help="s between queue queries")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    dataset = demo_dataset()
    trainer = {
        "type": "pacemaker",
        "cutoff": 5.0,
        "ace_params": {"number_of_functions_per_element": 40},
        "fit": {"maxiter": args.maxiter, "test_size": 0.1, "seed": 42},
        "threads": args.threads,
    }
    execution = {
        "type": "slurm",
        "queue": args.partition,
        "time_limit": "01:00:00",
        "cpus": args.threads,
        "poll_seconds": args.poll,
    }
    workdir = Path(tempfile.mkdtemp(prefix="batch_overhead_"))
    walls = {}
    potentials = {}
    for name, config in (
        ("local", trainer),
        ("slurm", {**trainer, "execution": execution}),
    ):
        started = time.perf_counter()
        potentials[name] = create_trainer(parse_trainer_config(config)).train(
            dataset, workdir / name
        )
        walls[name] = time.perf_counter() - started

    print(
        f"demo EMT Cu-Pt, {len(dataset)} structures, 40 functions/element, "
        f"maxiter {args.maxiter}, {args.threads} threads, queue polled every {args.poll:g} s"
    )
    for name, wall in walls.items():
        test = potentials[name].test_metrics
        assert test is not None
        print(
            f"wall time  {name:>5}: {wall:7.1f} s   test RMSE {test.energy_rmse_mev_per_atom:.3f} "
            f"meV/atom, {test.force_rmse_mev_per_angstrom:.3f} meV/Å"
        )
    print(
        f"batch overhead: {walls['slurm'] - walls['local']:+.1f} s "
        f"({walls['slurm'] / walls['local']:.2f}x)"
    )
    print(f"run directories: {workdir}")


if __name__ == "__main__":
    main()
