"""The ``mlip-autopipec`` command line: the parser and ``main``; the commands live beside it."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from mlip_autopipec.cli import analysis, batch, history, resume, training
from mlip_autopipec.cli import loop as loop_command
from mlip_autopipec.cli.common import (
    ACCEPT_FAILED_CHECKS_HELP,
    EXIT_BAD_INPUT,
    EXIT_FAILED_CHECKS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SCHEDULER_UNREACHABLE,
    EXIT_TRAINING_FAILED,
    TRUST_PICKLE_HELP,
    UsageError,
    progress_reporter,
    read_data,
)
from mlip_autopipec.cli.summary import summary
from mlip_autopipec.config.config_model import load_config
from mlip_autopipec.errors import (
    ConfigurationError,
    DatasetValidationError,
    FailedChecksError,
    OracleError,
    OutputError,
    SchedulerUnreachableError,
    TrainerError,
)
from mlip_autopipec.files import LinkRefused
from mlip_autopipec.version import __version__

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED_CHECKS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SCHEDULER_UNREACHABLE",
    "EXIT_TRAINING_FAILED",
    "UsageError",
    "build_parser",
    "main",
    "summary",
]


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
        "--previous",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help=(
            "continue from this run: its data plus DATA, its test structures stay test, "
            "pacemaker starts from its potential (docs: how-to/generations)"
        ),
    )
    train.add_argument(
        "--accept-failed-checks",
        action="store_true",
        help=ACCEPT_FAILED_CHECKS_HELP,
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

    history.add_history_parser(commands)
    demo = commands.add_parser(
        "demo",
        help="train a small Cu-Pt potential on built-in EMT data (no input needed)",
        description=(
            "Label ~100 Cu-Pt structures with ASE's EMT (a stand-in for DFT) and train a small "
            "ACE potential on them with pacemaker."
        ),
    )
    demo.add_argument("--out", type=Path, default=Path("demo_run"), help="run directory")
    demo.add_argument(
        "--loop",
        action="store_true",
        help="run a small active-learning loop on EMT Cu instead (a few minutes on 2 cores)",
    )

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
    resume.add_finish_command(commands)
    loop_command.add_loop_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    if args.verbose:  # our own DEBUG messages carry the programs' output, line by line
        logging.getLogger("mlip_autopipec").setLevel(logging.DEBUG)
    else:  # psij (batch jobs) logs every queue poll at INFO
        logging.getLogger("psij").setLevel(logging.WARNING)
    shown_as = warnings.formatwarning
    warnings.formatwarning = _one_line_warning  # a warning for users, not a source line
    try:
        return _run_command(args)
    except (ConfigurationError, DatasetValidationError, OutputError, UsageError) as error:
        return _fail(args, f"error: {error}", EXIT_BAD_INPUT)
    except FailedChecksError as error:
        return _fail(args, f"error: {error}", EXIT_FAILED_CHECKS)
    except LinkRefused as error:
        return _fail(args, f"error: {error.strerror}", EXIT_BAD_INPUT)
    except FileNotFoundError as error:
        what = str(error) if error.filename is None else f"{error.filename}: no such file"
        return _fail(args, f"error: {what}", EXIT_BAD_INPUT)
    except SchedulerUnreachableError as error:
        return _fail(args, f"error: {error}", EXIT_SCHEDULER_UNREACHABLE)
    except TrainerError as error:
        return _fail(args, f"error: training failed: {error}", EXIT_TRAINING_FAILED)
    except OracleError as error:
        return _fail(args, f"error: labelling failed: {error}", EXIT_TRAINING_FAILED)
    except KeyboardInterrupt:
        return _fail(args, "interrupted (Ctrl-C): stopped", EXIT_INTERRUPTED)
    except OSError as error:  # e.g. a full disk, with the file it could not write
        where = f": {error.filename}" if error.filename is not None else ""
        return _fail(args, f"error: {error.strerror or error}{where}", EXIT_TRAINING_FAILED)
    except Exception as error:  # a bug or an unforeseen failure: one line, not a traceback
        message = f"error: {type(error).__name__}: {error}"
        if not args.verbose:
            message += " (run with --verbose for the traceback)"
        return _fail(args, message, EXIT_TRAINING_FAILED)
    finally:
        warnings.formatwarning = shown_as


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """A warning as the CLI prints it: ``warning: ...``, without the file and line it came from."""
    return f"warning: {message}\n"


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    """Print one line (the traceback too with --verbose) and return the exit code."""
    if args.verbose:
        traceback.print_exc()
    print(message, file=sys.stderr)
    return code


def _run_command(args: argparse.Namespace) -> int:
    if args.command == "train" and args.resume is not None:
        return resume.resume(args)
    if args.command == "train":
        missing = [f"--{name}" for name in ("config", "data", "out") if getattr(args, name) is None]
        if missing:
            raise UsageError(f"train needs {', '.join(missing)} (or --resume RUN_DIR)")
        config = load_config(args.config).trainer
        if args.accept_failed_checks:
            config.accept_failed_checks = True
        dataset = read_data(args.data, args.trust_pickle, config.cutoff)
        test_dataset = (
            None if args.test_data is None else read_data(args.test_data, False, config.cutoff)
        )
        if args.previous is not None:
            return training.train_next_generation(
                config, dataset, args, progress_reporter(config, args)
            )
        if args.detach:
            return batch.submit(
                config, dataset, args.out, progress_reporter(config, args), test_dataset
            )
        return training.train(
            config, dataset, args.out, progress_reporter(config, args), test_dataset
        )
    if args.command == "history":
        return history.history(args.run_dir, args.overwrite)
    if args.command == "demo" and args.loop:
        return loop_command.demo_loop(args)
    if args.command == "demo":
        return training.demo(args)
    if args.command == "loop":
        return loop_command.loop(args)
    if args.command == "dimers":
        return analysis.dimers(args.run_dir, args.png, args.overwrite)
    if args.command == "report":
        return analysis.report(args.run_dir, args.dimers, args.overwrite)
    if args.command == "select":
        return training.select(args)
    if args.command == "gamma":
        return analysis.gamma(args.run_dir, read_data(args.data, args.trust_pickle))
    if args.command == "evaluate":
        return analysis.evaluate(args.run_dir, args.data, args.out, args.worst, args.overwrite)
    if args.command == "status":
        return batch.status(args.run_dir)
    if args.command == "wait":
        return batch.wait(args.run_dir, progress_reporter, args)
    if args.command == "finish":
        return resume.finish(args)
    raise AssertionError(f"unknown command {args.command}")  # argparse rejects these
