"""What the CLI's commands share: exit codes, the usage error, reading data and potentials."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.domain_models.dataset import Dataset

if TYPE_CHECKING:
    from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink

EXIT_OK = 0
EXIT_TRAINING_FAILED = 1
EXIT_BAD_INPUT = 2
#: The fitted potential failed its safety checks (dimers, compression).
EXIT_FAILED_CHECKS = 3
#: The cluster's scheduler does not answer: try again later (EX_TEMPFAIL of sysexits.h).
EXIT_SCHEDULER_UNREACHABLE = 75
#: 128 + SIGINT, as a shell reports a program stopped by Ctrl-C.
EXIT_INTERRUPTED = 130

#: pacemaker's data files are pickles: reading one can run any code it carries.
PICKLE_SUFFIXES = (".pckl.gzip", ".pkl.gz", ".pckl", ".pkl", ".pickle")
TRUST_PICKLE_HELP = (
    "read DATA even if it is a pickle (pacemaker's .pckl.gzip). A pickle can run any code "
    "when it is read: give this only for files you made yourself or fully trust"
)
ACCEPT_FAILED_CHECKS_HELP = (
    "keep a potential that fails the safety checks (dimers, compression): exit 0"
)

log = logging.getLogger("mlip_autopipec")


class UsageError(Exception):
    """A command cannot do what was asked with the given input (exit code 2)."""


def read_data(path: Path, trust_pickle: bool, cutoff: float | None = None) -> Dataset:
    """The structures of ``path``; a pickle only with ``--trust-pickle``. With ``cutoff`` (Å,
    the trainer's), each structure's neighbour search is done once, here, and kept with the
    dataset for the trainer (``Dataset``: ``neighbours``)."""
    if not path.name.endswith(PICKLE_SUFFIXES):
        from mlip_autopipec.domain_models.neighbours import NeighbourTable

        table = None if cutoff is None else NeighbourTable(cutoff)
        return Dataset.read(path, neighbours=table)
    if not trust_pickle:
        raise UsageError(
            f"{path} is a pickle (pacemaker's format), which can run code when read: it is "
            "read only with --trust-pickle; or convert it to extxyz yourself"
        )
    from mlip_autopipec.infrastructure.pacemaker.data_file import read_dataset

    return read_dataset(path)


def progress_reporter(config: TrainerConfig, args: argparse.Namespace) -> ProgressSink | None:
    """Live progress on stderr: a bar on a terminal, else a plain line every 30 s. None with
    --quiet, or with --verbose, where the programs' own output is shown line by line."""
    from mlip_autopipec.cli.progress import ProgressReporter

    if args.quiet or args.verbose or config.type != "pacemaker":
        return None
    return ProgressReporter(config.fit.maxiter)
