"""The records of a run: what its post-processing needs from before the fit (``PendingRun``),
kept with its config for a local run (``run_record.json``) and with its job for a batch run
(``batch_job.json``), so that another process can resume, finish or wait for it."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from mlip_autopipec.config.config_model import Baseline, Executables, TrainerConfig
from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.lineage import Lineage
from mlip_autopipec.domain_models.potential import (
    POTENTIAL_JSON,
    DataFile,
    FitCost,
    Provenance,
    Selection,
    files_sha256,
)
from mlip_autopipec.errors import DatasetValidationError, OutputError
from mlip_autopipec.files import file_sha256, write_text_atomic
from mlip_autopipec.infrastructure.rundir.files import (
    BATCH_JOB_JSON,
    RUN_RECORD,
    TEST_SET,
    TRAINING_SET,
)

log = logging.getLogger(__name__)


class PendingRun(BaseModel):
    """What the post-processing needs from before the fit (decided from the whole dataset).

    A batch run keeps it in ``batch_job.json``, so that another process can finish the run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    elements: tuple[str, ...]
    baseline: Baseline
    reference_energies: dict[str, float]
    reference_energies_warning: str | None = None
    shortest_distances: list[tuple[str, str, float]]
    selection: Selection | None
    provenance: Provenance
    #: A fixed test set (``test_dataset``) was written beside the training data.
    fixed_test_set: bool = False
    #: The cost estimated before the fit (measured parts filled in after it).
    estimate: FitCost | None = None
    #: A next generation: where it comes from (None: a fit without a parent).
    lineage: Lineage | None = None

    @property
    def maxiter_setting(self) -> str:
        """The setting that bounds this fit's iterations: fit.upfit_maxiter when it continues
        from the parent's potential, else fit.maxiter."""
        continued = self.lineage is not None and self.lineage.fitted_from != "fresh"
        return "fit.upfit_maxiter" if continued else "fit.maxiter"

    def distances(self) -> dict[tuple[str, str], float]:
        """Shortest distance (Å) of each element pair in the data."""
        return {(a, b): distance for a, b, distance in self.shortest_distances}


class RunRecord(BaseModel):
    """``run_record.json``: the config of a local run and what its post-processing needs,
    written before pacemaker starts (a batch run keeps the same in ``batch_job.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: TrainerConfig
    run: PendingRun

    def save(self, run_dir: Path) -> None:
        write_text_atomic(Path(run_dir) / RUN_RECORD, self.model_dump_json(indent=2) + "\n")

    def config_here(self, record: Path, executables: Executables | None = None) -> TrainerConfig:
        """The recorded config with the programs of this machine (:func:`config_here`)."""
        return config_here(self.config, record, executables)


def config_here(
    recorded: TrainerConfig, record: Path, executables: Executables | None = None
) -> TrainerConfig:
    """A run's recorded config to run with here: its programs are ``executables`` (the
    user's config) or the defaults found on PATH, never those of the record (``record``, the
    file it was read from). A run directory is data, never code: it may come from someone
    else, so recorded executables that differ are reported (a warning) and ignored."""
    used = executables or Executables()
    if recorded.executables != used:
        differing = ", ".join(
            f"{name}: {theirs!r}"
            for name, theirs in recorded.executables.model_dump().items()
            if getattr(used, name) != theirs
        )
        log.warning(
            "%s records trainer.executables (%s) that differ from this config's and PATH's: "
            "ignored (a run directory never names the programs that run; give them in your "
            "config file)",
            record,
            differing,
        )
    return recorded.model_copy(update={"executables": used})


class BatchRecord(RunRecord):
    """``batch_job.json``: the run's record, with the job of the run directory."""

    backend: str
    job_id: str
    submitted_at: datetime
    queue: str | None
    log_offset: int = 0
    outcome: Literal["failed", "cancelled"] | None = None
    reason: str | None = None

    def save(self, run_dir: Path) -> None:
        write_text_atomic(run_dir / BATCH_JOB_JSON, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> BatchRecord:
        """The record of ``run_dir``; FileNotFoundError if it holds no batch job."""
        path = Path(run_dir) / BATCH_JOB_JSON
        if not path.exists():
            raise FileNotFoundError(f"{run_dir} holds no batch job ({BATCH_JOB_JSON} is missing)")
        try:
            return cls.model_validate_json(path.read_text())
        except (ValidationError, UnicodeDecodeError) as error:
            raise OutputError(
                f"{path} is not a readable batch record ({type(error).__name__})", path=path
            ) from error

    @property
    def execution(self) -> BatchExecution:
        execution = self.config.execution
        assert isinstance(execution, BatchExecution)
        return execution


def refuse_running_job(run_dir: Path) -> None:
    """A run directory whose batch job may still run takes no new fit (OutputError)."""
    path = Path(run_dir) / BATCH_JOB_JSON
    if path.is_file() and not (Path(run_dir) / POTENTIAL_JSON).exists():
        record = BatchRecord.load(run_dir)
        if record.outcome is None:
            raise OutputError(
                f"{run_dir} has {record.backend} job {record.job_id} submitted at "
                f"{record.submitted_at:%Y-%m-%d %H:%M} UTC and not finished: follow it with "
                f"'mlip-autopipec wait {run_dir}' or choose another output directory",
                path=Path(run_dir),
            )


def record_data_files(run_dir: Path, counts: dict[str, int]) -> dict[str, DataFile]:
    """The record of the data files a run just wrote (name: number of structures)."""
    return {
        name: DataFile(n_structures=n, sha256=file_sha256(Path(run_dir) / name))
        for name, n in counts.items()
    }


def check_data_files(run_dir: Path, provenance: Provenance, record: str) -> str | None:
    """Check that the data files of ``run_dir`` are those its record (``record``, a file
    name) describes: OutputError naming the file and what differs (structures dropped or
    added, or other positions, cells or labels). Returns their hash as found
    (``Provenance.data_files_sha256``); None, with a warning, for an older record that
    lists no data files."""
    run_dir = Path(run_dir)
    if not provenance.data_files:
        log.warning(
            "%s lists no data files (an older mlip-autopipec wrote it): the run's data cannot "
            "be checked against it",
            run_dir / record,
        )
        return None
    for name, recorded in sorted(provenance.data_files.items()):
        path = run_dir / name
        if not path.is_file():
            raise OutputError(
                f"{path} is missing: {record} records it as the run's data", path=path
            )
        found = file_sha256(path)
        if found != recorded.sha256:
            difference = _difference(path, recorded)
            raise OutputError(
                f"{path} is not the data its run recorded in {record}: {difference}; it was "
                "changed after the run, or the record was edited. Nothing was written",
                path=path,
            )
    return provenance.data_files_sha256()


def data_sha256_now(run_dir: Path, provenance: Provenance) -> str | None:
    """The hash of a run's data files as they are now (those its record lists; for an older
    record, training_set.extxyz and test_set.extxyz): what a next generation records of its
    parent (``Lineage.parent_data_sha256``). None when a file is missing."""
    run_dir = Path(run_dir)
    names = list(provenance.data_files) or [
        name for name in (TRAINING_SET, TEST_SET) if (run_dir / name).is_file()
    ]
    if not names or not all((run_dir / name).is_file() for name in names):
        return None
    return files_sha256({name: file_sha256(run_dir / name) for name in names})


def _difference(path: Path, recorded: DataFile) -> str:
    """What differs between ``path`` and its record, in words."""
    try:
        n_structures = len(Dataset.read(path))
    except (DatasetValidationError, OSError, ValueError) as error:
        return f"it is no longer readable data ({type(error).__name__})"
    if n_structures != recorded.n_structures:
        change = "dropped" if n_structures < recorded.n_structures else "added"
        return (
            f"it holds {n_structures} structures where the run fitted {recorded.n_structures} "
            f"({abs(n_structures - recorded.n_structures)} {change})"
        )
    return (
        f"it holds the {n_structures} structures the run recorded, but their positions, cells, "
        f"energies or forces differ (sha256 {file_sha256(path)[:12]}..., recorded "
        f"{recorded.sha256[:12]}...)"
    )
