"""Wall time of `mlip-autopipec train` against running pacemaker by hand on the same files.

Usage: python benchmarks/overhead.py [--data ../shared/data/Cu-II.extxyz] [--maxiter 100]

Run A is the full `mlip-autopipec train` command (reading and checking the data, writing
pacemaker's files, the fit, the .yace conversion, the short-range check). Run B copies A's
prepared data file and input.yaml into a fresh directory and runs `pacemaker input.yaml` alone,
as a user who wrote the input by hand would. Both use the same settings, one after the other.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.pacemaker.outputs import (
    convert_predictions,
    read_prediction_metrics,
)
from mlip_autopipec.infrastructure.rundir.files import TEST_PREDICTIONS, TEST_PREDICTIONS_NPZ
from mlip_autopipec.infrastructure.trainer.programs.profile import program_environment
from mlip_autopipec.infrastructure.trainer.programs.runner import resolve_executable

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/Cu-II.extxyz")
    parser.add_argument("--maxiter", type=int, default=100)
    parser.add_argument("--functions", type=int, default=60)
    parser.add_argument("--cutoff", type=float, default=6.0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    trainer = {
        "type": "pacemaker",
        "cutoff": args.cutoff,
        "ace_params": {"number_of_functions_per_element": args.functions},
        "fit": {"maxiter": args.maxiter, "test_size": 0.1, "seed": 42},
    }
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="overhead_"))
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump({"trainer": trainer}))
    run_a, run_b = workdir / "mlip_autopipec", workdir / "by_hand"
    for run in (run_a, run_b):
        shutil.rmtree(run, ignore_errors=True)

    cli = Path(sys.executable).parent / "mlip-autopipec"
    started = time.perf_counter()
    subprocess.run(
        [
            str(cli),
            "--quiet",
            "train",
            "--config",
            str(config),
            "--data",
            str(args.data),
            "--out",
            str(run_a),
        ],
        check=True,
    )
    wall_a = time.perf_counter() - started

    run_b.mkdir()
    for name in ("training_data.pckl.gzip", "input.yaml"):
        shutil.copy(run_a / name, run_b / name)
    environment = {**__import__("os").environ, **program_environment(parse_trainer_config(trainer))}
    started = time.perf_counter()
    with (run_b / "stdout.log").open("w") as log:
        subprocess.run(
            [resolve_executable("pacemaker"), "input.yaml"],
            cwd=run_b,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    wall_b = time.perf_counter() - started

    ours = Potential.load(run_a).test_metrics
    # pacemaker's pickle, just written by this benchmark's own run, copied as the trainer does.
    convert_predictions(run_b / TEST_PREDICTIONS, run_b / TEST_PREDICTIONS_NPZ, {})
    theirs = read_prediction_metrics(run_b / TEST_PREDICTIONS_NPZ)
    assert ours is not None
    print(f"data: {args.data}  functions/element: {args.functions}  maxiter: {args.maxiter}")
    print(f"wall time  mlip-autopipec train: {wall_a:8.1f} s")
    print(f"wall time  pacemaker by hand:    {wall_b:8.1f} s")
    print(f"ratio: {wall_a / wall_b:.3f}  (target <= 1.05)")
    print(
        f"test RMSE  mlip-autopipec: {ours.energy_rmse_mev_per_atom:.2f} meV/atom, "
        f"{ours.force_rmse_mev_per_angstrom:.2f} meV/Å"
    )
    print(
        f"test RMSE  by hand:        {theirs.energy_rmse_mev_per_atom:.2f} meV/atom, "
        f"{theirs.force_rmse_mev_per_angstrom:.2f} meV/Å"
    )
    print(f"run directories: {workdir}")


if __name__ == "__main__":
    main()
