"""The ``mlip-autopipec`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mlip_autopipec.config.config_model import TrainerConfig, load_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import FitMetrics, Potential
from mlip_autopipec.errors import ConfigurationError, DatasetValidationError, TrainerError

EXIT_OK = 0
EXIT_TRAINING_FAILED = 1
EXIT_BAD_INPUT = 2

log = logging.getLogger("mlip_autopipec")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlip-autopipec",
        description=(
            "Fit an ACE interatomic potential (pacemaker) to labelled DFT data. "
            "Exit codes: 0 success, 1 training failed, 2 bad input or configuration."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the programs' output")
    parser.add_argument("-q", "--quiet", action="store_true", help="show warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a potential on a dataset",
        description="Train the potential that CONFIG's 'trainer' section describes on DATA.",
    )
    train.add_argument(
        "--config", required=True, type=Path, help="YAML file with a 'trainer' section"
    )
    train.add_argument(
        "--data",
        required=True,
        type=Path,
        help="labelled structures: any file ASE reads (extxyz, ASE db, OUTCAR, vasprun.xml, ...)",
    )
    train.add_argument("--out", required=True, type=Path, help="run directory for every artifact")

    demo = commands.add_parser(
        "demo",
        help="train a small Cu-Pt potential on built-in EMT data (no input needed)",
        description=(
            "Label ~100 Cu-Pt structures with ASE's EMT (a stand-in for DFT) and train a small "
            "ACE potential on them with pacemaker."
        ),
    )
    demo.add_argument("--out", type=Path, default=Path("demo_run"), help="run directory")

    dimers = commands.add_parser(
        "dimers",
        help="short-range check: E(r) of every element pair as an isolated dimer",
        description=(
            "Compute E(r) of every element pair of a trained potential (ACE plus its baseline) "
            "as an isolated dimer from 0.5 Å to the cutoff, plot it, and check that it rises "
            "steadily as r falls below the shortest distance in the training data."
        ),
    )
    dimers.add_argument("run_dir", type=Path, help="run directory of a trained potential")
    dimers.add_argument(
        "--png", type=Path, default=None, help="plot file (default: RUN_DIR/dimers.png)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.command == "train":
            config = load_config(args.config).trainer
            dataset = Dataset.read(args.data)
            return _train(config, dataset, args.out)
        if args.command == "demo":
            return _demo(args.out)
        if args.command == "dimers":
            return _dimers(args.run_dir, args.png)
    except (ConfigurationError, DatasetValidationError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainerError as error:
        print(f"error: training failed: {error}", file=sys.stderr)
        return EXIT_TRAINING_FAILED
    raise AssertionError(f"unknown command {args.command}")  # argparse rejects these


def _train(config: TrainerConfig, dataset: Dataset, out: Path) -> int:
    from mlip_autopipec.infrastructure.trainer import create_trainer

    log.info("%s", dataset)
    started = time.perf_counter()
    potential = create_trainer(config).train(dataset, out)
    print(summary(potential, wall_time_s=time.perf_counter() - started))
    return EXIT_OK


def _demo(out: Path) -> int:
    from mlip_autopipec.demo import demo_config, demo_dataset

    log.info("labelling the demo structures with EMT")
    return _train(demo_config(), demo_dataset(), out)


def _dimers(run_dir: Path, png: Path | None) -> int:
    from mlip_autopipec.analysis.dimers import check_dimer_curves, dimer_curves, plot_dimer_curves
    from mlip_autopipec.domain_models.dataset import shortest_distances
    from mlip_autopipec.infrastructure.trainer.base import DATA_FILE
    from mlip_autopipec.infrastructure.trainer.data_file import (
        dataframe_to_dataset,
        read_data_file,
    )

    potential = _load_potential(run_dir)
    data_path = potential.run_dir / DATA_FILE
    distances = shortest_distances(
        dataframe_to_dataset(read_data_file(data_path), source=data_path), potential.cutoff
    )
    curves = dimer_curves(potential.ase_calculator(), potential.elements, potential.cutoff)
    checks = check_dimer_curves(curves, distances)
    plot = plot_dimer_curves(curves, distances, png or potential.run_dir / "dimers.png")
    print(f"{'pair':>7} {'d_min data':>10} {'E(0.6)':>10} {'E(1.0)':>10} {'E(1.5)':>10}  repulsive")
    for check in checks:
        shortest = check.shortest_distance_in_data
        print(
            f"{'-'.join(check.pair):>7} "
            f"{'-' if shortest is None else f'{shortest:.3f} Å':>10} "
            + " ".join(f"{check.energies_ev[r]:10.3g}" for r in ("0.6", "1", "1.5"))
            + f"  {'yes' if check.repulsive_below_data else 'NO'}"
        )
    print(f"energies in eV relative to the cutoff; plot: {plot}")
    return EXIT_OK


def _load_potential(run_dir: Path) -> Potential:
    try:
        return Potential.load(run_dir)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{run_dir} holds no potential.json: it is not the directory of a finished run"
        ) from error


def summary(potential: Potential, *, wall_time_s: float | None = None) -> str:
    """What a user wants to know after a fit: where the potential is and how good it is."""
    lines = [f"potential ({potential.trainer}): {potential.yace_path}"]
    lines.append(f"record: {potential.run_dir / 'potential.json'}")
    lines.append(f"elements: {' '.join(potential.elements)}   cutoff: {potential.cutoff} Å")
    if wall_time_s is not None:
        lines.append(f"wall time: {wall_time_s:.1f} s")
    for label, metrics in (("train", potential.train_metrics), ("test", potential.test_metrics)):
        if metrics is not None:
            lines.append(_metrics_line(label, metrics))
    if potential.trainer == "mock":
        lines.append("(mock trainer: nothing was fitted)")
    return "\n".join(lines)


def _metrics_line(label: str, metrics: FitMetrics) -> str:
    return (
        f"{label:>5}: energy RMSE {metrics.energy_rmse_mev_per_atom:8.2f} meV/atom "
        f"(MAE {metrics.energy_mae_mev_per_atom:.2f}), force RMSE "
        f"{metrics.force_rmse_mev_per_angstrom:8.2f} meV/Å "
        f"(MAE {metrics.force_mae_mev_per_angstrom:.2f}), {metrics.n_structures} structures"
    )


if __name__ == "__main__":
    sys.exit(main())
