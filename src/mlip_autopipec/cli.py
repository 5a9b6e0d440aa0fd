"""The ``mlip-autopipec`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from mlip_autopipec import __version__
from mlip_autopipec.config.config_model import TrainerConfig, load_config, parse_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, FitCost, FitMetrics, Potential
from mlip_autopipec.errors import (
    ConfigurationError,
    DatasetValidationError,
    FailedChecksError,
    OutputError,
    TrainerError,
)

EXIT_OK = 0
EXIT_TRAINING_FAILED = 1
EXIT_BAD_INPUT = 2
#: The fitted potential failed its safety checks (dimers, compression).
EXIT_FAILED_CHECKS = 3
#: 128 + SIGINT, as a shell reports a program stopped by Ctrl-C.
EXIT_INTERRUPTED = 130

#: pacemaker's data files are pickles: reading one can run any code it carries.
PICKLE_SUFFIXES = (".pckl.gzip", ".pkl.gz", ".pckl", ".pkl", ".pickle")
TRUST_PICKLE_HELP = (
    "read DATA even if it is a pickle (pacemaker's .pckl.gzip). A pickle can run any code "
    "when it is read: give this only for files you made yourself or fully trust"
)

log = logging.getLogger("mlip_autopipec")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlip-autopipec",
        description=(
            "Fit an ACE interatomic potential (pacemaker) to labelled DFT data. "
            "Exit codes: 0 success, 1 training failed, 2 bad input or configuration, "
            "3 the fitted potential failed its safety checks."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the programs' output")
    parser.add_argument("-q", "--quiet", action="store_true", help="show warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a potential on a dataset",
        description=(
            "Train the potential that CONFIG's 'trainer' section describes on DATA into OUT "
            "(--config, --data and --out are needed), or continue an interrupted run with "
            "--resume RUN_DIR."
        ),
    )
    train.add_argument("--config", type=Path, help="YAML file with a 'trainer' section")
    train.add_argument(
        "--data",
        type=Path,
        help="labelled structures: any file ASE reads (extxyz, ASE db, OUTCAR, vasprun.xml, ...)",
    )
    train.add_argument(
        "--out",
        type=Path,
        help="run directory for every artifact: new, empty, or an unfinished run of ours",
    )
    train.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    train.add_argument(
        "--test-data",
        type=Path,
        default=None,
        help="a fixed test set (any ASE format) instead of a random split of DATA",
    )
    train.add_argument(
        "--accept-failed-checks",
        action="store_true",
        help="keep a potential that fails the safety checks (dimers, compression): exit 0",
    )
    train.add_argument(
        "--detach",
        action="store_true",
        help=(
            "with a batch execution (trainer.execution): submit the job, print its id and exit; "
            "'mlip-autopipec wait OUT' follows it and builds the potential"
        ),
    )
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help=(
            "continue the interrupted fit of RUN_DIR from its last interim potential (same "
            "data and split; --config, if given, may change only maxiter, time_budget, "
            "early stopping, threads)"
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
    dimers.add_argument("--overwrite", action="store_true", help="replace an existing --png file")

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
    report.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier report in a run directory that mlip-autopipec did not make",
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
    size.add_argument("--max-atoms", type=int, help="atoms to keep (a cost budget)")
    select.add_argument(
        "--previous",
        type=Path,
        help="run directory of a trained potential: select what its active set does not cover",
    )
    select.add_argument(
        "--overwrite", action="store_true", help="replace --out if it exists (never by default)"
    )
    select.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)

    gamma = commands.add_parser(
        "gamma",
        help="extrapolation grade of structures under a trained potential",
        description=(
            "Per-structure maximum extrapolation grade gamma of DATA under the potential of "
            "RUN_DIR (from its active set): above the active set's gamma tolerance (1.01 by "
            "default), the structure lies outside the training set's span."
        ),
    )
    gamma.add_argument("run_dir", type=Path, help="run directory of a trained potential")
    gamma.add_argument("data", type=Path, help="structures, any ASE format")
    gamma.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a trained potential on labelled data (e.g. structures it never saw)",
        description=(
            "Energy and force errors (RMSE, MAE, forces per element) of the potential of RUN_DIR "
            "on DATA, the worst structures with their shortest distance and max gamma, and "
            "parity plots, written to --out (default: RUN_DIR/evaluation_<DATA name>)."
        ),
    )
    evaluate.add_argument("run_dir", type=Path, help="run directory of a trained potential")
    evaluate.add_argument("data", type=Path, help="labelled structures, any ASE format")
    evaluate.add_argument("--out", type=Path, default=None, help="report directory")
    evaluate.add_argument("--worst", type=int, default=5, help="worst structures to list")
    evaluate.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the files of an earlier evaluation in the report directory",
    )

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
    from mlip_autopipec.cli_resume import add_finish_command

    add_finish_command(commands)
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
        return _run_command(args)
    except (ConfigurationError, DatasetValidationError, OutputError, UsageError) as error:
        return _fail(args, f"error: {error}", EXIT_BAD_INPUT)
    except FailedChecksError as error:
        return _fail(args, f"error: {error}", EXIT_FAILED_CHECKS)
    except FileNotFoundError as error:
        what = str(error) if error.filename is None else f"{error.filename}: no such file"
        return _fail(args, f"error: {what}", EXIT_BAD_INPUT)
    except TrainerError as error:
        return _fail(args, f"error: training failed: {error}", EXIT_TRAINING_FAILED)
    except KeyboardInterrupt:
        return _fail(args, "interrupted (Ctrl-C): stopped", EXIT_INTERRUPTED)
    except Exception as error:  # a bug or an unforeseen failure: one line, not a traceback
        message = f"error: {type(error).__name__}: {error}"
        if not args.verbose:
            message += " (run with --verbose for the traceback)"
        return _fail(args, message, EXIT_TRAINING_FAILED)


class UsageError(Exception):
    """A command cannot do what was asked with the given input (exit code 2)."""


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    """Print one line (the traceback too with --verbose) and return the exit code."""
    if args.verbose:
        traceback.print_exc()
    print(message, file=sys.stderr)
    return code


def _run_command(args: argparse.Namespace) -> int:
    if args.command == "train" and args.resume is not None:
        from mlip_autopipec.cli_resume import resume

        return resume(args, _progress_reporter)
    if args.command == "train":
        missing = [f"--{name}" for name in ("config", "data", "out") if getattr(args, name) is None]
        if missing:
            raise UsageError(f"train needs {', '.join(missing)} (or --resume RUN_DIR)")
        config = load_config(args.config).trainer
        if args.accept_failed_checks:
            config.accept_failed_checks = True
        dataset = _read_data(args.data, args.trust_pickle)
        test_dataset = None if args.test_data is None else _read_data(args.test_data, False)
        if args.detach:
            from mlip_autopipec.cli_batch import submit

            return submit(config, dataset, args.out, _progress_reporter(config, args), test_dataset)
        return _train(config, dataset, args.out, _progress_reporter(config, args), test_dataset)
    if args.command == "demo":
        return _demo(args)
    if args.command == "dimers":
        return _dimers(args.run_dir, args.png, args.overwrite)
    if args.command == "report":
        return _report(args.run_dir, args.dimers, args.overwrite)
    if args.command == "select":
        return _select(args)
    if args.command == "gamma":
        return _gamma(args.run_dir, _read_data(args.data, args.trust_pickle))
    if args.command == "evaluate":
        return _evaluate(args.run_dir, args.data, args.out, args.worst, args.overwrite)
    if args.command == "finish":
        from mlip_autopipec.cli_resume import finish

        return finish(args, _progress_reporter)
    if args.command in {"status", "wait"}:
        from mlip_autopipec import cli_batch

        if args.command == "status":
            return cli_batch.status(args.run_dir)
        return cli_batch.wait(args.run_dir, _progress_reporter, args)
    raise AssertionError(f"unknown command {args.command}")  # argparse rejects these


def _read_data(path: Path, trust_pickle: bool) -> Dataset:
    """The structures of ``path``; a pickle only with ``--trust-pickle``."""
    if not path.name.endswith(PICKLE_SUFFIXES):
        return Dataset.read(path)
    if not trust_pickle:
        raise UsageError(
            f"{path} is a pickle (pacemaker's format), which can run code when read: it is "
            "read only with --trust-pickle; or convert it to extxyz yourself"
        )
    from mlip_autopipec.infrastructure.trainer.data_file import read_dataset

    return read_dataset(path)


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
    test_dataset: Dataset | None = None,
) -> int:
    from mlip_autopipec.infrastructure.trainer import create_trainer

    log.info("%s", dataset)
    started = time.perf_counter()
    trainer = create_trainer(config, on_output_line=progress)
    potential = trainer.train(dataset, out, test_dataset=test_dataset)
    print(summary(potential, wall_time_s=time.perf_counter() - started))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from mlip_autopipec.demo import demo_config, demo_dataset

    log.info("labelling the demo structures with EMT")
    config = demo_config()
    return _train(config, demo_dataset(), args.out, _progress_reporter(config, args))


def _report(run_dir: Path, compute_dimers: bool, overwrite: bool) -> int:
    from mlip_autopipec.infrastructure.trainer.report import REPORT_DIR, build_report
    from mlip_autopipec.infrastructure.trainer.run_directory import is_ours

    if not (is_ours(run_dir) or (run_dir / POTENTIAL_JSON).is_file()):
        raise UsageError(
            f"{run_dir} is not a run directory of mlip-autopipec (no potential.json, no "
            "manifest): no report is written into it"
        )
    report_dir = run_dir / REPORT_DIR
    if report_dir.exists() and any(report_dir.iterdir()) and not (is_ours(run_dir) or overwrite):
        raise OutputError(
            f"{report_dir} exists and {run_dir} was not made by mlip-autopipec: give "
            "--overwrite to replace the report there",
            path=report_dir,
        )
    print(f"report: {build_report(run_dir, compute_dimers=compute_dimers)}")
    return EXIT_OK


def _select(args: argparse.Namespace) -> int:
    from ase.io import write

    from mlip_autopipec.infrastructure.trainer import PacemakerTrainer
    from mlip_autopipec.infrastructure.trainer.data_file import (
        dataset_to_dataframe,
        write_data_file,
    )
    from mlip_autopipec.infrastructure.trainer.run_directory import refuse_to_overwrite

    out: Path = args.out
    # Checked first: nothing is computed for a file that could not be written.
    refuse_to_overwrite(out, overwrite=args.overwrite, what="--out")
    if out.exists() and out.resolve() == args.data.resolve():
        log.warning("--overwrite: the selection replaces its own input %s", out)
    config = load_config(args.config).trainer
    overrides: dict[str, object] = {"enabled": True}
    if args.max_structures is not None or args.fraction is not None or args.max_atoms is not None:
        overrides |= {
            "max_structures": args.max_structures,
            "fraction": args.fraction,
            "max_atoms": args.max_atoms,
        }
    if args.previous is not None:
        overrides["previous_potential"] = args.previous
    active_set = {**config.active_set.model_dump(), **overrides}
    config = parse_config(
        {"trainer": {**config.model_dump(), "active_set": active_set}}, source=args.config
    ).trainer
    dataset = _read_data(args.data, args.trust_pickle)
    selection = PacemakerTrainer(config).select(dataset, out.with_name(out.name + ".selection"))
    selected = dataset.subset(selection.indices)
    from mlip_autopipec.files import atomic_path

    with atomic_path(out) as temporary:
        if out.name.endswith((".pckl.gzip", ".pkl.gz")):
            write_data_file(dataset_to_dataframe(selected), temporary)
        else:
            write(temporary, selected.to_atoms(), format="extxyz")
    print(
        f"selected {selection.n_selected} of {selection.n_total} structures "
        f"({selection.n_atoms} atoms): {out}"
    )
    return EXIT_OK


def _gamma(run_dir: Path, data: Dataset) -> int:
    from mlip_autopipec.analysis.extrapolation import extrapolation_grades, format_grades

    potential = _load_potential(run_dir)
    try:
        grades = extrapolation_grades(potential, data)
    except ValueError as error:  # no active set, a mock potential
        raise UsageError(f"no extrapolation grade: {error}") from error
    print(format_grades(grades, threshold=potential.gamma_tolerance))
    return EXIT_OK


def _evaluate(run_dir: Path, data: Path, out: Path | None, worst: int, overwrite: bool) -> int:
    from mlip_autopipec.analysis.evaluation import (
        EVALUATION_FILES,
        evaluate_potential,
        format_evaluation,
        overlap_warning,
        write_evaluation,
    )
    from mlip_autopipec.infrastructure.trainer.base import TRAINING_SET
    from mlip_autopipec.infrastructure.trainer.run_directory import refuse_to_overwrite

    potential = _load_potential(run_dir)
    report = out or potential.run_dir / f"evaluation_{data.name.split('.')[0]}"
    if report.exists() and not report.is_dir():
        raise UsageError(f"the report directory {report} is a file")
    for name in EVALUATION_FILES:
        refuse_to_overwrite(report / name, overwrite=overwrite, what="evaluation file")
    dataset = _read_data(data, trust_pickle=False)
    unknown = sorted(set(dataset.elements) - set(potential.elements))
    if unknown:
        raise DatasetValidationError(
            f"holds {unknown}, which the potential (elements {list(potential.elements)}) "
            "was not trained on",
            source=data,
        )
    training_file = potential.run_dir / TRAINING_SET
    if training_file.exists():
        warning = overlap_warning(Dataset.read(training_file), dataset, f"evaluated data {data}")
        if warning is not None:
            log.warning("%s", warning)
    evaluation = evaluate_potential(potential, dataset)
    write_evaluation(evaluation, report, worst=worst)
    print(format_evaluation(evaluation, worst))
    print(f"report: {report}")
    return EXIT_OK


def _dimers(run_dir: Path, png: Path | None, overwrite: bool) -> int:
    from mlip_autopipec.analysis.dimers import DIMERS_PNG, check_short_range
    from mlip_autopipec.infrastructure.trainer.run_directory import is_ours, refuse_to_overwrite

    potential = _load_potential(run_dir)
    plot = png or potential.run_dir / DIMERS_PNG
    refuse_to_overwrite(plot, overwrite=overwrite or (png is None and is_ours(run_dir)))
    distances = {
        check.pair: check.shortest_distance_in_data
        for check in potential.dimer_checks
        if check.shortest_distance_in_data is not None
    }
    try:
        calculator = potential.ase_calculator()
    except ValueError as error:  # a mock potential
        raise UsageError(f"no dimer curves: {error}") from error
    checks = check_short_range(calculator, potential.elements, potential.cutoff, distances, plot)
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
        raise UsageError(
            f"{run_dir} holds no potential.json: it is not the directory of a finished run"
        ) from error
    except (OSError, ValueError) as error:
        raise UsageError(f"{run_dir}: unreadable {POTENTIAL_JSON} ({error})") from error


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
    if potential.cost is not None:
        lines += _cost_lines(potential.cost)
    if potential.selection is not None:
        lines.append(
            f"trained on {potential.selection.n_selected} of {potential.selection.n_total} "
            f"structures (D-optimal selection: {potential.selection.file})"
        )
    failures = [check.failure() for check in potential.dimer_checks]
    failures += [check.failure() for check in potential.compression_checks]
    lines += [f"FAILED CHECK: {failure}" for failure in failures if failure]
    if potential.fit_stop is not None:
        lines.append(potential.fit_stop.describe())
    if potential.reference_energies_warning is not None:
        lines.append(f"WARNING: {potential.reference_energies_warning}")
    from mlip_autopipec.infrastructure.trainer.report import REPORT_DIR, REPORT_HTML

    report = potential.run_dir / REPORT_DIR / REPORT_HTML
    if report.exists():
        lines.append(f"report: {report}")
    if potential.trainer == "mock":
        lines.append("(mock trainer: nothing was fitted)")
    return "\n".join(lines)


def _cost_lines(cost: FitCost) -> list[str]:
    """Estimated against measured cost, the budget, and whether the fit had converged."""
    measured = (
        "not measured" if cost.s_per_iteration is None else f"{cost.s_per_iteration:.3g} s measured"
    )
    lines = [
        f"cost: {cost.iterations or 0} iterations, {measured} per iteration "
        f"(estimated {cost.estimated_s_per_iteration:.3g} s)"
    ]
    if cost.time_budget_s is not None:
        ended = "ended by the budget" if cost.stopped_at_budget else "ended before the budget"
        lines.append(f"time budget: {cost.time_budget_s:g} s, the fit {ended}")
    if cost.still_improving is not None:
        lines.append(f"NOTE: {cost.still_improving}")
    return lines


def _metrics_line(label: str, metrics: FitMetrics) -> str:
    return (
        f"{label:>5}: energy RMSE {metrics.energy_rmse_mev_per_atom:8.2f} meV/atom "
        f"(MAE {metrics.energy_mae_mev_per_atom:.2f}), force RMSE "
        f"{metrics.force_rmse_mev_per_angstrom:8.2f} meV/Å "
        f"(MAE {metrics.force_mae_mev_per_angstrom:.2f}), {metrics.n_structures} structures"
    )


if __name__ == "__main__":
    sys.exit(main())
