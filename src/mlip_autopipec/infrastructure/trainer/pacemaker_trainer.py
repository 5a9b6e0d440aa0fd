"""The pacemaker trainer: fits an ACE potential with pacemaker and converts it for deployment."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from mlip_autopipec.analysis.dimers import DIMERS_PNG, check_short_range
from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential, Selection
from mlip_autopipec.errors import ConfigurationError, TrainerError
from mlip_autopipec.infrastructure.trainer.base import BaseTrainer, RunPlan, prepare_workdir
from mlip_autopipec.infrastructure.trainer.batch_job import JobResult, ProgramStep
from mlip_autopipec.infrastructure.trainer.input_yaml import INPUT_YAML
from mlip_autopipec.infrastructure.trainer.outputs import (
    FITTING_DATA,
    OUTPUT_POTENTIAL_YAML,
    RESULT_FILES,
    TEST_PREDICTIONS,
    TRAIN_PREDICTIONS,
    read_prediction_metrics,
)
from mlip_autopipec.infrastructure.trainer.pending_run import BATCH_JOB_JSON, PendingRun
from mlip_autopipec.infrastructure.trainer.potential_file import (
    add_metadata,
    potential_metadata,
    set_reference_energies,
)
from mlip_autopipec.infrastructure.trainer.progress import reporting_step
from mlip_autopipec.infrastructure.trainer.runner import resolve_executable, run_program
from mlip_autopipec.infrastructure.trainer.selection import (
    SELECTION_DIR,
    TARGET_BASIS_YAML,
    check_previous_potential,
    requested_count,
    select_structures,
    write_target_basis,
)

log = logging.getLogger(__name__)

POTENTIAL_YACE = "potential.yace"
PACEMAKER_LOG = "pacemaker.log"
YAML2YACE_LOG = "pace_yaml2yace.log"
ACTIVESET_LOG = "pace_activeset.log"
ACTIVE_SET = "output_potential.asi"
CANDIDATES = "candidates.pckl.gzip"


class PacemakerTrainer(BaseTrainer):
    """Fits ACE with ``pacemaker`` and converts the result to ``.yace`` with ``pace_yaml2yace``."""

    def __init__(
        self, config: TrainerConfig, on_output_line: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(config)
        self.on_output_line = on_output_line

    def train(self, dataset: Dataset, workdir: Path) -> Potential:
        if isinstance(self.config.execution, BatchExecution):
            # The compute part runs as a batch job (README, "On a cluster").
            from mlip_autopipec.infrastructure.trainer.batch import BatchFit

            return BatchFit(self).run(dataset, workdir)
        environment = program_environment(self.config)
        prepared = self.prepare(dataset, workdir, environment)
        workdir = prepared.workdir

        # 5. Fit.
        with self._step("fitting (pacemaker)"):
            fit = prepared.compute_steps[0]
            self._run(fit.argv[0], fit.argv[1:], workdir, fit.log, environment)
        # 6.-11. .yace, active set, the potential's record, dimer check, report.
        return self.finish(workdir, prepared.run, job_result=None, environment=environment)

    def prepare(
        self, dataset: Dataset, workdir: Path, environment: dict[str, str] | None = None
    ) -> PreparedRun:
        """Everything before the fit: checks, selection, pacemaker's data file and input.yaml.

        Returns the run directory, what the post-processing needs and the compute steps
        (pacemaker, then pace_activeset) as argument lists, for this machine or a batch job.
        """
        executables = self.config.executables
        selecting = self.config.active_set.enabled
        environment = program_environment(self.config) if environment is None else environment
        # 1. Find the programs (and a previous potential) before anything is written.
        pacemaker = resolve_executable(executables.pacemaker)
        resolve_executable(executables.pace_yaml2yace)
        activeset = resolve_executable(executables.pace_activeset)
        pace_select = resolve_executable(executables.pace_select) if selecting else None
        previous = self._previous_potential() if selecting else None
        workdir = prepare_workdir(workdir)
        if (workdir / BATCH_JOB_JSON).exists():  # a batch job may still write here
            from mlip_autopipec.infrastructure.trainer.batch import refuse_running_job

            refuse_running_job(workdir)
        for name in (*RESULT_FILES, POTENTIAL_YACE, ACTIVE_SET):
            (workdir / name).unlink(missing_ok=True)

        # 2. Decide from all the data: reference energies, baseline cutoffs, pacemaker's input.
        n_training = (
            requested_count(self.config.active_set, len(dataset)) if selecting else len(dataset)
        )
        plan = self.plan_run(dataset, n_training=n_training)

        # 3. Select the training structures by D-optimality (optional).
        selection = None
        training_set = dataset
        if pace_select is not None:
            with self._step("selecting structures (pace_select)"):
                selection = self._select(
                    dataset, plan, n_training, pace_select, previous, workdir, environment
                )
            training_set = dataset.subset(selection.indices)

        # 4. Write the data file and input.yaml.
        with self._step(f"writing pacemaker's input ({len(training_set)} structures)"):
            self.write_inputs(training_set, workdir, plan)

        steps = [
            ProgramStep(name="pacemaker", argv=[pacemaker, INPUT_YAML], log=PACEMAKER_LOG),
            ProgramStep(
                name="pace_activeset",
                argv=[activeset, *self._activeset_arguments()],
                log=ACTIVESET_LOG,
                required=False,  # a potential without an active set is still a potential
            ),
        ]
        run = PendingRun(
            elements=dataset.elements,
            baseline=plan.baseline,
            reference_energies=plan.reference_energies,
            shortest_distances=[(a, b, d) for (a, b), d in plan.shortest_distances.items()],
            selection=selection,
            provenance=self.provenance(dataset),
        )
        return PreparedRun(workdir, run, steps)

    def finish(
        self,
        workdir: Path,
        run: PendingRun,
        job_result: JobResult | None,
        environment: dict[str, str] | None = None,
    ) -> Potential:
        """Everything after the fit: .yace, active set, record, dimer check, report.

        ``job_result`` is the outcome of a batch job, which ran pace_activeset already; None
        runs it here.
        """
        environment = program_environment(self.config) if environment is None else environment
        # 6. The baseline and reference energies go into the potential's metadata.
        output_yaml = workdir / OUTPUT_POTENTIAL_YAML
        self._require(output_yaml, "pacemaker finished but wrote no potential", PACEMAKER_LOG)
        add_metadata(output_yaml, potential_metadata(run.baseline, run.reference_energies))

        # 7. Convert to .yace (under a temporary name: a .yace exists only when complete).
        with self._step("converting to .yace (pace_yaml2yace)"):
            partial_yace = workdir / f".{POTENTIAL_YACE}.partial"
            self._run(
                resolve_executable(self.config.executables.pace_yaml2yace),
                [OUTPUT_POTENTIAL_YAML, "-o", partial_yace.name],
                workdir,
                YAML2YACE_LOG,
                environment,
            )
            self._require(partial_yace, "pace_yaml2yace wrote no .yace file", YAML2YACE_LOG)
            set_reference_energies(partial_yace, run.reference_energies)
            partial_yace.replace(workdir / POTENTIAL_YACE)

        # 8. Active set of the fitted potential: the extrapolation grade of new structures.
        if job_result is None:
            with self._step("active set (pace_activeset)"):
                active_set = self._active_set(
                    resolve_executable(self.config.executables.pace_activeset),
                    workdir,
                    environment,
                )
        else:
            from mlip_autopipec.infrastructure.trainer.batch import active_set_of_job

            active_set = active_set_of_job(job_result, workdir)

        # 9. Read pacemaker's own predictions of the final potential.
        self._require(workdir / TRAIN_PREDICTIONS, "pacemaker wrote no predictions", PACEMAKER_LOG)
        test_path = workdir / TEST_PREDICTIONS
        potential = Potential(
            run_dir=workdir,
            trainer="pacemaker",
            yace_file=POTENTIAL_YACE,
            yaml_file=OUTPUT_POTENTIAL_YAML,
            active_set_file=active_set,
            elements=run.elements,
            cutoff=self.config.cutoff,
            baseline=run.baseline,
            reference_energies=run.reference_energies,
            train_metrics=read_prediction_metrics(workdir / TRAIN_PREDICTIONS),
            test_metrics=read_prediction_metrics(test_path) if test_path.exists() else None,
            selection=run.selection,
            provenance=run.provenance,
        )

        # 10. Check the deployed potential (ACE + baseline) at short range: isolated dimers.
        with self._step("short-range check (dimers)"):
            checks = check_short_range(
                potential.ase_calculator(),
                potential.elements,
                potential.cutoff,
                run.distances(),
                workdir / DIMERS_PNG,
            )
            potential = potential.model_copy(update={"dimer_checks": tuple(checks)})

        # 11. potential.json is written last: it marks a finished run.
        potential.save()

        # 12. The training report; a finished potential stands without it.
        with self._step("training report"):
            self._report(workdir)
        return potential

    def _step(self, name: str) -> AbstractContextManager[None]:
        return reporting_step(self.on_output_line, name)

    def _run(
        self,
        program: str,
        arguments: list[str],
        workdir: Path,
        log_name: str,
        environment: dict[str, str],
    ) -> None:
        run_program(
            [program, *arguments],
            workdir=workdir,
            log_path=workdir / log_name,
            env=environment,
            time_limit_s=self.config.time_limit_seconds,
            on_line=self.on_output_line,
        )

    def select(self, dataset: Dataset, workdir: Path) -> Selection:
        """D-optimal selection alone (``trainer.active_set``), e.g. before sending structures
        to DFT; its files go into ``workdir/selection``."""
        if not self.config.active_set.enabled:
            raise ConfigurationError(
                [("trainer.active_set.enabled", "must be true (with max_structures or fraction)")]
            )
        pace_select = resolve_executable(self.config.executables.pace_select)
        previous = self._previous_potential()
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        wanted = requested_count(self.config.active_set, len(dataset))
        plan = self.plan_run(dataset, n_training=wanted)
        environment = program_environment(self.config)
        return self._select(dataset, plan, wanted, pace_select, previous, workdir, environment)

    def _select(
        self,
        dataset: Dataset,
        plan: RunPlan,
        wanted: int,
        pace_select: str,
        previous: Potential | None,
        workdir: Path,
        environment: dict[str, str],
    ) -> Selection:
        candidates = self.write_data(dataset, plan, workdir / SELECTION_DIR / CANDIDATES)
        if previous is None:
            basis = workdir / SELECTION_DIR / TARGET_BASIS_YAML
            write_target_basis(plan.pacemaker_input.to_yaml_dict()["potential"], basis)
            known = None
        else:
            basis, known = check_previous_potential(previous, dataset)
        return select_structures(
            dataset,
            candidates,
            wanted=wanted,
            settings=self.config.active_set,
            pace_select=pace_select,
            basis_yaml=basis,
            active_set=known,
            workdir=workdir,
            environment=environment,
            time_limit_s=self.config.time_limit_seconds,
            on_line=self.on_output_line,
        )

    @staticmethod
    def _report(workdir: Path) -> None:
        # Imported here: the report module imports this package.
        from mlip_autopipec.infrastructure.trainer.report import build_report

        try:
            log.info("training report: %s", build_report(workdir))
        except Exception as error:  # a plotting failure must not lose a finished potential
            log.warning("no training report for %s: %s", workdir, error)

    def _activeset_arguments(self) -> list[str]:
        """pace_activeset's arguments: the training data pacemaker used and the potential."""
        settings = self.config.active_set
        options = ["-g", str(settings.gamma_tolerance)] + (["-a"] if settings.all_atoms else [])
        return ["-d", FITTING_DATA, *options, OUTPUT_POTENTIAL_YAML]

    def _active_set(self, activeset: str, workdir: Path, environment: dict[str, str]) -> str | None:
        """Run pace_activeset; its file name, or None (with a warning) when it cannot be built.

        A potential without an active set is still a valid potential: only its extrapolation
        grade is unavailable. pace_activeset fails when the training set holds fewer atomic
        environments of an element than the basis has functions for it.
        """
        try:
            self._run(
                activeset,
                self._activeset_arguments(),
                workdir,
                ACTIVESET_LOG,
                environment,
            )
            self._require(workdir / ACTIVE_SET, "pace_activeset wrote no active set", ACTIVESET_LOG)
        except TrainerError as error:
            (workdir / ACTIVE_SET).unlink(missing_ok=True)
            reason = error.log_tail[-1] if error.log_tail else error.message
            log.warning(
                "the potential has no active set, so no extrapolation grade: pace_activeset "
                "failed (%s; see %s)",
                reason.strip(),
                workdir / ACTIVESET_LOG,
            )
            return None
        return ACTIVE_SET

    def _previous_potential(self) -> Potential | None:
        path = self.config.active_set.previous_potential
        if path is None:
            return None
        try:
            return Potential.load(path)
        except (FileNotFoundError, ValueError) as error:
            raise ConfigurationError(
                [("trainer.active_set.previous_potential", f"cannot load {path}: {error}")]
            ) from error

    @staticmethod
    def _require(path: Path, message: str, log_name: str) -> None:
        if not path.exists():
            raise TrainerError(
                f"{message} ({path.name} is missing)",
                workdir=path.parent,
                log_path=path.parent / log_name,
            )


@dataclass(frozen=True)
class PreparedRun:
    """A run directory ready for the fit: what the post-processing needs, the compute steps."""

    workdir: Path
    run: PendingRun
    compute_steps: list[ProgramStep]


def program_environment(config: TrainerConfig) -> dict[str, str]:
    """Thread counts and visible GPUs for pacemaker (TensorFlow), from the config.

    Threads default to all cores of the machine. GPUs default to those of the machine when it
    has any; otherwise CUDA is hidden, which also spares TensorFlow its search for a GPU.
    """
    threads = str(config.threads or os.cpu_count() or 1)
    environment = {
        "OMP_NUM_THREADS": threads,
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": threads,
        "TF_CPP_MIN_LOG_LEVEL": "1",
    }
    if config.gpu_devices is not None:
        environment["CUDA_VISIBLE_DEVICES"] = config.gpu_devices
    elif not machine_has_gpu():
        environment["CUDA_VISIBLE_DEVICES"] = "-1"
    return environment


def machine_has_gpu() -> bool:
    """True when an NVIDIA driver reports at least one GPU."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())
