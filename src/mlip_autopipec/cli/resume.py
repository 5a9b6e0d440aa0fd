"""The CLI's commands for an interrupted fit: ``train --resume RUN_DIR`` and ``finish RUN_DIR``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mlip_autopipec.cli.common import (
    ACCEPT_FAILED_CHECKS_HELP,
    EXIT_OK,
    UsageError,
    progress_reporter,
)
from mlip_autopipec.cli.summary import summary
from mlip_autopipec.config.config_model import load_config


def add_finish_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``finish`` subcommand."""
    finish = commands.add_parser(
        "finish",
        help="make the interim potential of an interrupted fit into a usable, marked potential",
        description=(
            "Build the potential of an interrupted run (Ctrl-C, a time limit, a killed job) "
            "from pacemaker's last interim potential: .yace, active set, safety checks, "
            "report and potential.json, which records the iteration it stopped at and "
            "'finished_from: interim'. 'train --resume RUN_DIR' continues the fit instead."
        ),
    )
    finish.add_argument("run_dir", type=Path, help="run directory of an interrupted fit")
    finish.add_argument(
        "--accept-failed-checks",
        action="store_true",
        help=ACCEPT_FAILED_CHECKS_HELP,
    )


def resume(args: argparse.Namespace) -> int:
    """``train --resume RUN_DIR [--config C]``: go on with the fit from its interim potential."""
    from mlip_autopipec.infrastructure.trainer.interrupted.interim import unfinished_run
    from mlip_autopipec.infrastructure.trainer.interrupted.resume import resume_config, resume_fit
    from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PacemakerTrainer
    from mlip_autopipec.report import build_report_or_warn

    given = [
        name for name in ("data", "out", "test_data", "previous") if getattr(args, name) is not None
    ]
    if given or args.detach:
        options = ", ".join(f"--{name.replace('_', '-')}" for name in given) or "--detach"
        raise UsageError(
            f"train --resume goes on with the run's own data in RUN_DIR: {options} cannot be "
            "given with it"
        )
    mine = None if args.config is None else load_config(args.config).trainer
    unfinished = unfinished_run(args.resume, "resume", None if mine is None else mine.executables)
    config = resume_config(unfinished.config, mine)
    if args.accept_failed_checks:
        config = config.model_copy(update={"accept_failed_checks": True})
    started = time.perf_counter()
    progress = progress_reporter(config, args)
    trainer = PacemakerTrainer(config, progress, report=build_report_or_warn)
    potential = resume_fit(trainer, unfinished)
    print(summary(potential, wall_time_s=time.perf_counter() - started))
    return EXIT_OK


def finish(args: argparse.Namespace) -> int:
    """``finish RUN_DIR``: the interim potential of an interrupted run made usable, marked."""
    from mlip_autopipec.infrastructure.trainer.interrupted.finish import finish_interim
    from mlip_autopipec.infrastructure.trainer.interrupted.interim import unfinished_run
    from mlip_autopipec.infrastructure.trainer.interrupted.resume import resume_config
    from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PacemakerTrainer
    from mlip_autopipec.report import build_report_or_warn

    unfinished = unfinished_run(args.run_dir, "finish")
    config = resume_config(unfinished.config, None)
    if args.accept_failed_checks:
        config = config.model_copy(update={"accept_failed_checks": True})
    started = time.perf_counter()
    trainer = PacemakerTrainer(config, progress_reporter(config, args), report=build_report_or_warn)
    potential = finish_interim(trainer, unfinished)
    print(summary(potential, wall_time_s=time.perf_counter() - started))
    return EXIT_OK
