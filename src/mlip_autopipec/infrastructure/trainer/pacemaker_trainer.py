"""The pacemaker trainer: fits an ACE potential with pacemaker and converts it for deployment."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from mlip_autopipec.analysis.dimers import DIMERS_PNG, check_short_range
from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential, Selection
from mlip_autopipec.errors import ConfigurationError, TrainerError
from mlip_autopipec.infrastructure.trainer.base import BaseTrainer, RunPlan, prepare_workdir
from mlip_autopipec.infrastructure.trainer.budget import (
    SizedFit,
    size_fit,
    with_deadline_callback,
)
from mlip_autopipec.infrastructure.trainer.fit_deadline import DEADLINE_ENV
from mlip_autopipec.infrastructure.trainer.fit_record import (
    measured_cost,
    warn_about_test_set,
    warn_about_test_split,
)
from mlip_autopipec.infrastructure.trainer.input_yaml import INPUT_YAML
from mlip_autopipec.infrastructure.trainer.outputs import (
    FITTING_DATA,
    OUTPUT_POTENTIAL_YAML,
    RESULT_FILES,
    TEST_PREDICTIONS,
    TRAIN_PREDICTIONS,
    read_prediction_metrics,
)
from mlip_autopipec.infrastructure.trainer.potential_file import (
    add_metadata,
    potential_metadata,
    set_reference_energies,
)
from mlip_autopipec.infrastructure.trainer.progress import ProgressReporter, reporting_step
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
        started = time.monotonic()  # a time budget covers the whole training
        executables = self.config.executables
        selecting = self.config.active_set.enabled
        # 1. Find the programs (and a previous potential) before anything is written.
        pacemaker = resolve_executable(executables.pacemaker)
        yaml2yace = resolve_executable(executables.pace_yaml2yace)
        activeset = resolve_executable(executables.pace_activeset)
        pace_select = resolve_executable(executables.pace_select) if selecting else None
        previous = self._previous_potential() if selecting else None
        workdir = prepare_workdir(workdir)
        for name in (*RESULT_FILES, POTENTIAL_YACE, ACTIVE_SET):
            (workdir / name).unlink(missing_ok=True)
        environment = program_environment(self.config)

        # 2. Decide from all the data: reference energies, baseline cutoffs, pacemaker's input.
        n_training = (
            requested_count(self.config.active_set, len(dataset), dataset.n_atoms)
            if selecting
            else len(dataset)
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

        # 3b. What the fit will cost; with a time budget, the iterations (and basis) it allows.
        sized = self._size_fit(training_set, plan, time.monotonic() - started)
        plan = replace(plan, pacemaker_input=sized.pacemaker_input)
        fit_environment = dict(environment)
        if sized.optimiser_time_s is not None:
            plan = replace(plan, pacemaker_input=with_deadline_callback(plan.pacemaker_input))
            fit_environment[DEADLINE_ENV] = repr(time.time() + sized.optimiser_time_s)

        # 4. Write the data file and input.yaml.
        with self._step(f"writing pacemaker's input ({len(training_set)} structures)"):
            self.write_inputs(training_set, workdir, plan)

        # 5. Fit; the baseline and reference energies go into the potential's metadata.
        with self._step("fitting (pacemaker)"):
            fit_started = datetime.now()  # local time, as pacemaker's log
            self._run(pacemaker, [INPUT_YAML], workdir, PACEMAKER_LOG, fit_environment)
            cost = measured_cost(
                workdir,
                workdir / PACEMAKER_LOG,
                sized,
                self.config.fit,
                fit_started,
            )
            output_yaml = workdir / OUTPUT_POTENTIAL_YAML
            self._require(output_yaml, "pacemaker finished but wrote no potential", PACEMAKER_LOG)
            add_metadata(output_yaml, potential_metadata(plan.baseline, plan.reference_energies))

        # 6. Convert to .yace (under a temporary name: a .yace exists only when complete).
        with self._step("converting to .yace (pace_yaml2yace)"):
            partial_yace = workdir / f".{POTENTIAL_YACE}.partial"
            self._run(
                yaml2yace,
                [OUTPUT_POTENTIAL_YAML, "-o", partial_yace.name],
                workdir,
                YAML2YACE_LOG,
                environment,
            )
            self._require(partial_yace, "pace_yaml2yace wrote no .yace file", YAML2YACE_LOG)
            set_reference_energies(partial_yace, plan.reference_energies)
            partial_yace.replace(workdir / POTENTIAL_YACE)

        # 7. Active set of the fitted potential: the extrapolation grade of new structures.
        with self._step("active set (pace_activeset)"):
            active_set = self._active_set(activeset, workdir, environment)

        # 8. Read pacemaker's own predictions of the final potential.
        self._require(workdir / TRAIN_PREDICTIONS, "pacemaker wrote no predictions", PACEMAKER_LOG)
        test_path = workdir / TEST_PREDICTIONS
        potential = Potential(
            run_dir=workdir,
            trainer="pacemaker",
            yace_file=POTENTIAL_YACE,
            yaml_file=OUTPUT_POTENTIAL_YAML,
            active_set_file=active_set,
            elements=dataset.elements,
            cutoff=self.config.cutoff,
            baseline=plan.baseline,
            reference_energies=plan.reference_energies,
            train_metrics=read_prediction_metrics(workdir / TRAIN_PREDICTIONS),
            test_metrics=read_prediction_metrics(test_path) if test_path.exists() else None,
            selection=selection,
            cost=cost,
            provenance=self.provenance(dataset),
        )
        warn_about_test_set(workdir, potential.elements)

        # 9. Check the deployed potential (ACE + baseline) at short range: isolated dimers.
        with self._step("short-range check (dimers)"):
            checks = check_short_range(
                potential.ase_calculator(),
                potential.elements,
                potential.cutoff,
                plan.shortest_distances,
                workdir / DIMERS_PNG,
            )
            potential = potential.model_copy(update={"dimer_checks": tuple(checks)})

        # 10. potential.json is written last: it marks a finished run.
        potential.save()

        # 11. The training report; a finished potential stands without it.
        with self._step("training report"):
            self._report(workdir)
        return potential

    def _size_fit(self, training_set: Dataset, plan: RunPlan, elapsed_s: float) -> SizedFit:
        """The cost estimate, logged before the fit; the progress bar counts the planned
        iterations."""
        fit = self.config.fit
        warn_about_test_split(len(training_set), fit.test_size)
        sized = size_fit(
            plan.pacemaker_input,
            training_set,
            fit,
            basis_given=self.config.ace_params.number_of_functions_per_element is not None,
            threads=self.config.threads or os.cpu_count() or 1,
            elapsed_s=elapsed_s,
        )
        if sized.estimate is not None:
            budget = "" if fit.time_budget is None else f" (time budget {fit.time_budget:g} s)"
            log.info(
                "cost estimate: %s%s", sized.estimate.describe(sized.planned_iterations), budget
            )
        if isinstance(self.on_output_line, ProgressReporter):
            self.on_output_line.maxiter = sized.planned_iterations
        return sized

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
        wanted = requested_count(self.config.active_set, len(dataset), dataset.n_atoms)
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

    def _active_set(self, activeset: str, workdir: Path, environment: dict[str, str]) -> str | None:
        """Run pace_activeset; its file name, or None (with a warning) when it cannot be built.

        A potential without an active set is still a valid potential: only its extrapolation
        grade is unavailable. pace_activeset fails when the training set holds fewer atomic
        environments of an element than the basis has functions for it.
        """
        settings = self.config.active_set
        options = ["-g", str(settings.gamma_tolerance)] + (["-a"] if settings.all_atoms else [])
        try:
            self._run(
                activeset,
                ["-d", FITTING_DATA, *options, OUTPUT_POTENTIAL_YAML],
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
