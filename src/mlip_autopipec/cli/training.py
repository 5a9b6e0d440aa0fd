"""The CLI's commands that fit or select: ``train`` (``--previous`` too), ``demo``, ``select``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlip_autopipec.cli.common import EXIT_OK, UsageError, log, progress_reporter, read_data
from mlip_autopipec.cli.summary import summary
from mlip_autopipec.config.config_model import TrainerConfig, load_config, parse_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.report.history import load_finished

if TYPE_CHECKING:
    from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink


def train(
    config: TrainerConfig,
    dataset: Dataset,
    out: Path,
    progress: ProgressSink | None = None,
    test_dataset: Dataset | None = None,
) -> int:
    from mlip_autopipec.infrastructure.trainer import create_trainer
    from mlip_autopipec.report import build_report_or_warn

    log.info("%s", dataset)
    started = time.perf_counter()
    trainer = create_trainer(config, on_output_line=progress, report=build_report_or_warn)
    potential = trainer.train(dataset, out, test_dataset=test_dataset)
    print(summary(potential, wall_time_s=time.perf_counter() - started))
    return EXIT_OK


def demo(args: argparse.Namespace) -> int:
    from mlip_autopipec.demo import demo_config, demo_dataset

    log.info("labelling the demo structures with EMT")
    config = demo_config()
    return train(config, demo_dataset(), args.out, progress_reporter(config, args))


def select(args: argparse.Namespace) -> int:
    from ase.io import write

    from mlip_autopipec.infrastructure.pacemaker.data_file import (
        dataset_to_dataframe,
        write_data_file,
    )
    from mlip_autopipec.infrastructure.rundir.claim import refuse_to_overwrite
    from mlip_autopipec.infrastructure.trainer import make_pacemaker_trainer

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
    dataset = read_data(args.data, args.trust_pickle)
    selection = make_pacemaker_trainer(config).select(
        dataset, out.with_name(out.name + ".selection")
    )
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


def train_next_generation(
    config: TrainerConfig,
    dataset: Dataset,
    args: argparse.Namespace,
    progress: ProgressSink | None,
) -> int:
    """``train --previous RUN_DIR``: the next generation of RUN_DIR's potential."""
    from mlip_autopipec.infrastructure.trainer import create_trainer
    from mlip_autopipec.report import build_report_or_warn

    if args.detach or args.test_data is not None:
        option = "--detach" if args.detach else "--test-data"
        raise UsageError(
            f"{option} and --previous cannot be combined: a next generation runs here, and its "
            "test set is the parent's plus a share (fit.test_size) of the new structures"
        )
    previous = load_finished(args.previous)
    log.info("%s", dataset)
    started = time.perf_counter()
    trainer = create_trainer(config, on_output_line=progress, report=build_report_or_warn)
    potential = trainer.train(dataset, args.out, previous=previous)
    print(summary(potential, wall_time_s=time.perf_counter() - started))
    return EXIT_OK
