"""The ``mlip-autopipec`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mlip_autopipec.config.config_model import TrainerConfig, load_config, parse_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, FitMetrics, Potential
from mlip_autopipec.errors import ConfigurationError, DatasetValidationError, TrainerError

EXIT_OK = 0
EXIT_TRAINING_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

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
    train.add_argument(
        "--detach",
        action="store_true",
        help=(
            "with a batch execution (trainer.execution): submit the job, print its id and exit; "
            "'mlip-autopipec wait OUT' follows it and builds the potential"
        ),
    )

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

    report = commands.add_parser(
        "report",
        help="(re)build the training report of a run: plots, metrics.json, report.html",
        description=(
            "Draw parity plots, error histograms and the learning curve of a pacemaker run and "
            "write them with the metrics, config and provenance into "
            "RUN_DIR/report/mlip_autopipec/report.html."
        ),
    )
    report.add_argument("run_dir", type=Path, help="run directory of a training run")
    report.add_argument(
        "--dimers",
        action="store_true",
        help="compute the dimer curves from the potential instead of reusing RUN_DIR/dimers.png",
    )

    select = commands.add_parser(
        "select",
        help="D-optimal selection of structures, without training",
        description=(
            "Select the most informative structures of DATA by D-optimality (pace_select) over "
            "the ACE basis of CONFIG, e.g. before sending them to DFT. The size comes from "
            "CONFIG's trainer.active_set or from --max-structures/--fraction."
        ),
    )
    select.add_argument("--config", required=True, type=Path, help="YAML file with 'trainer'")
    select.add_argument("--data", required=True, type=Path, help="structures, any ASE format")
    select.add_argument(
        "--out",
        required=True,
        type=Path,
        help="selected structures: .extxyz/.xyz (ASE) or .pckl.gzip (pacemaker's format)",
    )
    size = select.add_mutually_exclusive_group()
    size.add_argument("--max-structures", type=int, help="number of structures to keep")
    size.add_argument("--fraction", type=float, help="fraction of the structures to keep")
    select.add_argument(
        "--previous",
        type=Path,
        help="run directory of a trained potential: select what its active set does not cover",
    )

    gamma = commands.add_parser(
        "gamma",
        help="extrapolation grade of structures under a trained potential",
        description=(
            "Per-structure maximum extrapolation grade gamma of DATA under the potential of "
            "RUN_DIR (from its active set): gamma > 1 means outside the training set's span."
        ),
    )
    gamma.add_argument("run_dir", type=Path, help="run directory of a trained potential")
    gamma.add_argument("data", type=Path, help="structures, any ASE format")

    status = commands.add_parser(
        "status",
        help="what a batch run is doing: pending, running, finished or failed",
        description=(
            "Say what the run of RUN_DIR is doing: pending (queued), running (with its last "
            "progress line), finished, or failed (with the reason and the log's end). "
            "Exit code 0, or 1 for a failed run."
        ),
    )
    status.add_argument("run_dir", type=Path, help="run directory of a batch run")

    wait = commands.add_parser(
        "wait",
        help="follow a batch run to its end and build the potential",
        description=(
            "Follow the batch job of RUN_DIR (submitted with train --detach) to its end, then "
            "build the potential, its record and report there, as a followed train does. "
            "Ctrl-C cancels the job."
        ),
    )
    wait.add_argument("run_dir", type=Path, help="run directory of a batch run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    if args.verbose:  # our own DEBUG messages carry the programs' output, line by line
        logging.getLogger("mlip_autopipec").setLevel(logging.DEBUG)
    else:  # psij (batch jobs) logs every queue poll at INFO
        logging.getLogger("psij").setLevel(logging.WARNING)
    try:
        if args.command == "train":
            config = load_config(args.config).trainer
            dataset = Dataset.read(args.data)
            if args.detach:
                from mlip_autopipec.cli_batch import submit

                return submit(config, dataset, args.out, _progress_reporter(config, args))
            return _train(config, dataset, args.out, _progress_reporter(config, args))
        if args.command == "demo":
            return _demo(args)
        if args.command == "dimers":
            return _dimers(args.run_dir, args.png)
        if args.command == "report":
            return _report(args.run_dir, args.dimers)
        if args.command == "select":
            return _select(args)
        if args.command == "gamma":
            return _gamma(args.run_dir, args.data)
        if args.command in {"status", "wait"}:
            from mlip_autopipec import cli_batch

            if args.command == "status":
                return cli_batch.status(args.run_dir)
            return cli_batch.wait(args.run_dir, _progress_reporter, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigurationError, DatasetValidationError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainerError as error:
        print(f"error: training failed: {error}", file=sys.stderr)
        return EXIT_TRAINING_FAILED
    raise AssertionError(f"unknown command {args.command}")  # argparse rejects these


def _progress_reporter(
    config: TrainerConfig, args: argparse.Namespace
) -> Callable[[str], None] | None:
    """Live progress on stderr: a bar on a terminal, else a plain line every 30 s. None with
    --quiet, or with --verbose, where the programs' own output is shown line by line."""
    from mlip_autopipec.infrastructure.trainer.progress import ProgressReporter

    if args.quiet or args.verbose or config.type != "pacemaker":
        return None
    return ProgressReporter(config.fit.maxiter)


def _train(
    config: TrainerConfig,
    dataset: Dataset,
    out: Path,
    progress: Callable[[str], None] | None = None,
) -> int:
    from mlip_autopipec.infrastructure.trainer import create_trainer

    log.info("%s", dataset)
    started = time.perf_counter()
    potential = create_trainer(config, on_output_line=progress).train(dataset, out)
    print(summary(potential, wall_time_s=time.perf_counter() - started))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from mlip_autopipec.demo import demo_config, demo_dataset

    log.info("labelling the demo structures with EMT")
    config = demo_config()
    return _train(config, demo_dataset(), args.out, _progress_reporter(config, args))


def _report(run_dir: Path, compute_dimers: bool) -> int:
    from mlip_autopipec.infrastructure.trainer.report import build_report

    print(f"report: {build_report(run_dir, compute_dimers=compute_dimers)}")
    return EXIT_OK


def _select(args: argparse.Namespace) -> int:
    from ase.io import write

    from mlip_autopipec.infrastructure.trainer import PacemakerTrainer
    from mlip_autopipec.infrastructure.trainer.data_file import (
        dataset_to_dataframe,
        write_data_file,
    )

    config = load_config(args.config).trainer
    overrides: dict[str, object] = {"enabled": True}
    if args.max_structures is not None or args.fraction is not None:
        overrides |= {"max_structures": args.max_structures, "fraction": args.fraction}
    if args.previous is not None:
        overrides["previous_potential"] = args.previous
    active_set = {**config.active_set.model_dump(), **overrides}
    config = parse_config(
        {"trainer": {**config.model_dump(), "active_set": active_set}}, source=args.config
    ).trainer
    dataset = Dataset.read(args.data)
    out: Path = args.out
    selection = PacemakerTrainer(config).select(dataset, out.with_name(out.name + ".selection"))
    selected = dataset.subset(selection.indices)
    if out.name.endswith((".pckl.gzip", ".pkl.gz")):
        write_data_file(dataset_to_dataframe(selected), out)
    else:
        write(out, selected.to_atoms())
    print(f"selected {selection.n_selected} of {selection.n_total} structures: {out}")
    return EXIT_OK


def _gamma(run_dir: Path, data: Path) -> int:
    from mlip_autopipec.analysis.extrapolation import extrapolation_grades, format_grades

    potential = _load_potential(run_dir)
    print(format_grades(extrapolation_grades(potential, Dataset.read(data))))
    return EXIT_OK


def _dimers(run_dir: Path, png: Path | None) -> int:
    from mlip_autopipec.analysis.dimers import DIMERS_PNG, check_short_range
    from mlip_autopipec.domain_models.dataset import shortest_distances
    from mlip_autopipec.infrastructure.trainer.base import DATA_FILE
    from mlip_autopipec.infrastructure.trainer.data_file import read_dataset

    potential = _load_potential(run_dir)
    training_data = read_dataset(potential.run_dir / DATA_FILE)
    distances = shortest_distances(training_data, potential.cutoff)
    plot = png or potential.run_dir / DIMERS_PNG
    checks = check_short_range(
        potential.ase_calculator(), potential.elements, potential.cutoff, distances, plot
    )
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
    lines.append(f"record: {potential.run_dir / POTENTIAL_JSON}")
    lines.append(f"elements: {' '.join(potential.elements)}   cutoff: {potential.cutoff} Å")
    if wall_time_s is not None:
        lines.append(f"wall time: {wall_time_s:.1f} s")
    for label, metrics in (("train", potential.train_metrics), ("test", potential.test_metrics)):
        if metrics is not None:
            lines.append(_metrics_line(label, metrics))
    if potential.selection is not None:
        lines.append(
            f"trained on {potential.selection.n_selected} of {potential.selection.n_total} "
            f"structures (D-optimal selection: {potential.selection.file})"
        )
    lines += [
        f"short range: {'-'.join(check.pair)} does NOT rise steadily below "
        f"{check.first_violation_distance} Å (see dimers.png)"
        for check in potential.dimer_checks
        if not check.repulsive_below_data
    ]
    from mlip_autopipec.infrastructure.trainer.report import REPORT_DIR, REPORT_HTML

    report = potential.run_dir / REPORT_DIR / REPORT_HTML
    if report.exists():
        lines.append(f"report: {report}")
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
