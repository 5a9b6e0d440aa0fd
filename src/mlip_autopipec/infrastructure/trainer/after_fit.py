"""pacemaker's outputs of a fit, read right after it: its potential (with our metadata), its
predictions (copied to a format that cannot run code) and the deployable ``.yace``."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlip_autopipec.config.config_model import FitSettings
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.infrastructure.pacemaker.outputs import (
    PredictionArrays,
    convert_fit_predictions,
)
from mlip_autopipec.infrastructure.pacemaker.potential_file import (
    add_metadata,
    potential_metadata,
    set_reference_energies,
)
from mlip_autopipec.infrastructure.rundir.files import (
    OUTPUT_POTENTIAL_YAML,
    PACEMAKER_LOG,
    POTENTIAL_YACE,
    TRAIN_PREDICTIONS,
    YAML2YACE_LOG,
)
from mlip_autopipec.infrastructure.rundir.records import PreparedRun
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile


def read_fit(prepared: PreparedRun, fit: FitSettings) -> dict[str, PredictionArrays]:
    """Right after pacemaker: metadata into its potential, and its predictions copied to a
    format that cannot run code; every structure and atom we wrote must be in them."""
    workdir, run = prepared.workdir, prepared.run
    output_yaml = workdir / OUTPUT_POTENTIAL_YAML
    require(output_yaml, "pacemaker finished but wrote no potential", PACEMAKER_LOG)
    try:
        add_metadata(output_yaml, potential_metadata(run.baseline, run.reference_energies))
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError) as error:
        raise TrainerError(
            f"pacemaker wrote an unreadable {OUTPUT_POTENTIAL_YAML} "
            f"({type(error).__name__}: {str(error).splitlines()[0]})",
            workdir=workdir,
            log_path=workdir / PACEMAKER_LOG,
        ) from error
    require(workdir / TRAIN_PREDICTIONS, "pacemaker wrote no predictions", PACEMAKER_LOG)
    return convert_fit_predictions(
        workdir,
        prepared.training_set,
        prepared.test_dataset,
        weighting=fit.weighting,
        log_name=PACEMAKER_LOG,
    )


def convert_to_yace(prepared: PreparedRun, profile: ProgramProfile) -> str:
    """``potential.yace`` from pacemaker's potential, with the reference energies as its E0;
    written under a temporary name, so that a .yace exists only when complete."""
    workdir = prepared.workdir
    partial_yace = workdir / f".{POTENTIAL_YACE}.partial"
    profile.run("pace_yaml2yace", [OUTPUT_POTENTIAL_YAML, "-o", partial_yace.name], workdir)
    require(partial_yace, "pace_yaml2yace wrote no .yace file", YAML2YACE_LOG)
    set_reference_energies(partial_yace, prepared.run.reference_energies)
    partial_yace.replace(workdir / POTENTIAL_YACE)
    return POTENTIAL_YACE


def require(path: Path, message: str, log_name: str) -> None:
    """TrainerError (``message``, naming the log to read) unless a program wrote ``path``."""
    if not path.exists():
        raise TrainerError(
            f"{message} ({path.name} is missing)",
            workdir=path.parent,
            log_path=path.parent / log_name,
        )
