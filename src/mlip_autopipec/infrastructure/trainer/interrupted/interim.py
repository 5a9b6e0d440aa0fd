"""What an unfinished run keeps so that it can be resumed or finished: pacemaker's interim
potential, the run's record (config and what the post-processing needs), and the checks that a
directory holds such a run.

pacemaker saves the potential of every iteration to ``interim_potential_0.yaml`` (its fit cycle
0), so after Ctrl-C, a time limit or a killed job the last iterate is still in the run
directory. ``train --resume`` (:mod:`resume`) goes on from it, ``finish``
(:mod:`finish`) turns it into a potential marked as interim.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from mlip_autopipec.config.config_model import Executables, TrainerConfig
from mlip_autopipec.domain_models.baseline import pair_potential
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON
from mlip_autopipec.errors import OutputError
from mlip_autopipec.files import atomic_path, write_text_atomic
from mlip_autopipec.infrastructure.pacemaker.input_yaml import PacemakerInput
from mlip_autopipec.infrastructure.pacemaker.log import read_fit_timing
from mlip_autopipec.infrastructure.rundir.claim import is_ours
from mlip_autopipec.infrastructure.rundir.files import (
    BATCH_JOB_JSON,
    DATA_FILE,
    INPUT_YAML,
    INTERIM_POTENTIAL,
    PACEMAKER_LOG,
    RESUME_JSON,
    RUN_RECORD,
    TEST_DATA_FILE,
    TEST_SET,
    TRAINING_SET,
)
from mlip_autopipec.infrastructure.rundir.records import (
    BatchRecord,
    PendingRun,
    RunRecord,
    check_data_files,
    refuse_running_job,
)
from mlip_autopipec.infrastructure.trainer.plan import PreparedRun, write_fit_data

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnfinishedRun:
    """A run directory of ours whose fit did not finish, with the interim potential it left."""

    path: Path
    config: TrainerConfig
    run: PendingRun
    #: Iterations done in all: those before a resumed fit, and those of the last pacemaker run.
    iterations_done: int
    #: Iterations before the last resumed fit (0: it was never resumed).
    resumed_from: int


def unfinished_run(
    run_dir: Path, what: str, executables: Executables | None = None
) -> UnfinishedRun:
    """The unfinished run of ``run_dir``, checked for ``what`` ('resume', 'finish'); OutputError
    (exit 2) for a directory that is not ours, a finished run, a job that may still run, a run
    without its record or without an interim potential. Its config runs the programs of
    ``executables`` (the user's config) or of PATH, never those of the record."""
    path = Path(run_dir).absolute()
    if not path.is_dir():
        raise OutputError(f"{path} is not a directory: nothing to {what}", path=path)
    if not is_ours(path):
        raise OutputError(
            f"{path} is not a run directory of mlip-autopipec (it has no manifest): nothing to "
            f"{what}",
            path=path,
        )
    if (path / POTENTIAL_JSON).exists():
        raise OutputError(
            f"{path} holds a finished potential ({POTENTIAL_JSON}): nothing to {what}", path=path
        )
    refuse_running_job(path)
    config, run = _read_record(path, what, executables)
    # The data it goes on with must be those the run fitted.
    check_data_files(
        path, run.provenance, RUN_RECORD if (path / RUN_RECORD).is_file() else BATCH_JOB_JSON
    )
    interim = path / INTERIM_POTENTIAL
    if not interim.is_file():
        raise OutputError(
            f"{path} holds no interim potential ({INTERIM_POTENTIAL}): its fit stopped before "
            f"pacemaker's first iteration, so there is nothing to {what}; train it again",
            path=path,
        )
    check_interim_potential(interim)
    resumed_from = _resumed_from(path)
    done = resumed_from + read_fit_timing(path / PACEMAKER_LOG).iterations
    return UnfinishedRun(path, config, run, done, resumed_from)


def check_interim_potential(path: Path) -> None:
    """OutputError when ``path`` is not a readable potential (e.g. the fit was killed while
    pacemaker wrote it): read by pyace, or as YAML where pyace is not installed."""
    try:
        from pyace import BBasisConfiguration
    except ImportError:  # no pacemaker here: resume and finish will say so
        BBasisConfiguration = None
    try:
        if BBasisConfiguration is None:
            if not isinstance(yaml.safe_load(path.read_text()), dict):
                raise ValueError("not a mapping")
        else:
            BBasisConfiguration(str(path))
    except Exception as error:  # pyace raises plain RuntimeErrors from C++
        raise OutputError(
            f"the interim potential {path} is unreadable ({error}): the fit may have been killed "
            "while pacemaker wrote it",
            path=path,
        ) from error


def rebuild_inputs(unfinished: UnfinishedRun) -> PreparedRun:
    """pacemaker's data file(s) again from the run's safe copies (``training_set.extxyz``,
    ``test_set.extxyz``), never from the pickles a killed run left: the same structures in the
    same order, so pacemaker's seeded split is the same."""
    path, run = unfinished.path, unfinished.run
    training_set = _read_copy(path / TRAINING_SET)
    baseline = pair_potential(run.baseline, run.elements)
    write_fit_data(training_set, run.reference_energies, baseline, path / DATA_FILE)
    test_dataset = None
    if run.fixed_test_set:
        test_dataset = _read_copy(path / TEST_SET)
        write_fit_data(test_dataset, run.reference_energies, baseline, path / TEST_DATA_FILE)
    return PreparedRun(path, run, training_set, test_dataset)


def _read_record(
    path: Path, what: str, executables: Executables | None
) -> tuple[TrainerConfig, PendingRun]:
    if (path / RUN_RECORD).is_file():
        try:
            record = RunRecord.model_validate_json((path / RUN_RECORD).read_text())
        except (ValidationError, UnicodeDecodeError) as error:
            raise OutputError(
                f"{path / RUN_RECORD} is not a readable run record ({type(error).__name__})",
                path=path,
            ) from error
        return record.config_here(path / RUN_RECORD, executables), record.run
    if (path / BATCH_JOB_JSON).is_file():
        batch = BatchRecord.load(path)
        return batch.config_here(path / BATCH_JOB_JSON, executables), batch.run
    raise OutputError(
        f"{path} has no run record ({RUN_RECORD}): its fit never started, or an older "
        f"mlip-autopipec made it; there is nothing to {what}",
        path=path,
    )


def _resumed_from(path: Path) -> int:
    try:
        data = json.loads((path / RESUME_JSON).read_text())
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as error:
        raise OutputError(f"{path / RESUME_JSON} is unreadable ({error})", path=path) from error
    value = data.get("resumed_from_iteration") if isinstance(data, dict) else None
    if not isinstance(value, int) or value < 0:
        raise OutputError(f"{path / RESUME_JSON} holds no iteration count", path=path)
    return value


def write_resumed_from(path: Path, iteration: int) -> None:
    """Record the iterations done before a resumed fit begins (its log counts from 0 again)."""
    write_text_atomic(path / RESUME_JSON, json.dumps({"resumed_from_iteration": iteration}) + "\n")


def _read_copy(path: Path) -> Dataset:
    if not path.is_file():
        raise OutputError(
            f"{path} is missing: the run's copy of its data is needed to go on", path=path
        )
    return Dataset.read(path)


def recorded_input(path: Path) -> PacemakerInput:
    """The run's own ``input.yaml``, as mlip-autopipec wrote it (OutputError otherwise)."""
    try:
        return PacemakerInput.model_validate(yaml.safe_load((path / INPUT_YAML).read_text()))
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise OutputError(
            f"{path / INPUT_YAML} is missing or not pacemaker's input as mlip-autopipec wrote "
            f"it ({type(error).__name__})",
            path=path,
        ) from error


def copy_file(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically: ``target`` exists only complete."""
    with atomic_path(target) as partial:
        shutil.copyfile(source, partial)
