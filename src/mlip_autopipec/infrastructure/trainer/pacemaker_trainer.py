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

import yaml

from mlip_autopipec.analysis.dimers import DIMERS_PNG
from mlip_autopipec.analysis.safety import failed_checks_message, run_safety_checks
from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.fit_stop import FitStop
from mlip_autopipec.domain_models.isolated_atoms import AccountedDataset
from mlip_autopipec.domain_models.potential import FitCost, Potential, Selection
from mlip_autopipec.errors import ConfigurationError, FailedChecksError, TrainerError
from mlip_autopipec.infrastructure.trainer.active_set import (
    ACTIVE_SET,
    active_set_of_job,
    build_active_set,
)
from mlip_autopipec.infrastructure.trainer.base import BaseTrainer, RunPlan, check_test_split
from mlip_autopipec.infrastructure.trainer.batch_job import JobResult
from mlip_autopipec.infrastructure.trainer.budget import (
    SizedFit,
    size_fit,
    with_deadline_callback,
)
from mlip_autopipec.infrastructure.trainer.early_stop import early_stop_record
from mlip_autopipec.infrastructure.trainer.fit_deadline import DEADLINE_ENV
from mlip_autopipec.infrastructure.trainer.fit_record import (
    log_estimate,
    measured_cost,
    warn_about_test_set,
)
from mlip_autopipec.infrastructure.trainer.input_yaml import INPUT_YAML
from mlip_autopipec.infrastructure.trainer.interim import (
    RESUME_FILES,
    RunRecord,
    warn_if_resumable,
)
from mlip_autopipec.infrastructure.trainer.outputs import (
    OUTPUT_POTENTIAL_YAML,
    RESULT_FILES,
    TEST_PREDICTIONS,
    TRAIN_PREDICTIONS,
    PredictionArrays,
    convert_fit_predictions,
)
from mlip_autopipec.infrastructure.trainer.pending_run import (
    PendingRun,
    PreparedRun,
    Programs,
    refuse_running_job,
)
from mlip_autopipec.infrastructure.trainer.potential_file import (
    add_metadata,
    potential_metadata,
    set_reference_energies,
)
from mlip_autopipec.infrastructure.trainer.progress import ProgressReporter, reporting_step
from mlip_autopipec.infrastructure.trainer.run_directory import claim_run_directory
from mlip_autopipec.infrastructure.trainer.runner import resolve_executable, run_program
from mlip_autopipec.infrastructure.trainer.selection import (
    SELECTION_DIR,
    TARGET_BASIS_YAML,
    check_previous_potential,
    keep_all,
    load_previous_potential,
    requested_count,
    select_structures,
    write_target_basis,
)

log = logging.getLogger(__name__)

POTENTIAL_YACE = "potential.yace"
PACEMAKER_LOG = "pacemaker.log"
YAML2YACE_LOG = "pace_yaml2yace.log"
CANDIDATES = "candidates.pckl.gzip"
#: What a new fit must not find stale in its run directory.
REPLACED = (*RESULT_FILES, POTENTIAL_YACE, ACTIVE_SET, *RESUME_FILES)


class PacemakerTrainer(BaseTrainer):
    """Fits ACE with ``pacemaker`` and converts the result to ``.yace`` with ``pace_yaml2yace``."""

    def __init__(
        self, config: TrainerConfig, on_output_line: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(config)
        self.on_output_line = on_output_line

    def train(
        self, dataset: Dataset, workdir: Path, *, test_dataset: Dataset | None = None
    ) -> Potential:
        started = time.monotonic()  # a time budget covers the whole training
        if isinstance(self.config.execution, BatchExecution):
            # The compute part runs as a batch job (README, "On a cluster").
            from mlip_autopipec.infrastructure.trainer.batch import BatchFit

            return BatchFit(self).run(dataset, workdir, test_dataset=test_dataset)
        # 1. Find the programs, check the data, before anything is written.
        programs, accounted = self.check_inputs(dataset, test_dataset)
        refuse_running_job(workdir)  # a batch job may still write there
        warn_if_resumable(workdir)
        environment = program_environment(self.config)
        with claim_run_directory(workdir, replaces=REPLACED) as run:
            # 2.-4. Plan, select, write pacemaker's input (and what train --resume needs).
            prepared = self.prepare(
                accounted, test_dataset, run.path, programs, environment, budget_from=started
            )
            RunRecord(config=self.config, run=prepared.run).save(run.path)
            # 5. Fit (ended at the deadline of a time budget, if any); the baseline and
            #    reference energies go into the potential's metadata.
            sized = prepared.sized
            fit_environment = dict(environment)
            if sized is not None and sized.optimiser_time_s is not None:
                fit_environment[DEADLINE_ENV] = repr(time.time() + sized.optimiser_time_s)
            with self._step("fitting (pacemaker)"):
                fit_started = datetime.now()  # local time, as pacemaker's log
                self._run(
                    programs.pacemaker, [INPUT_YAML], run.path, PACEMAKER_LOG, fit_environment
                )
                predictions = self.read_fit(prepared)
            cost = None
            if sized is not None:
                log_path = run.path / PACEMAKER_LOG
                cost = measured_cost(run.path, log_path, sized, self.config.fit, fit_started)
            # 6.-12. .yace, active set, record, safety gate, report.
            fit_stop = early_stop_record(run.path / PACEMAKER_LOG)
            return self.finish(prepared, predictions, environment, cost=cost, fit_stop=fit_stop)

    def check_inputs(
        self, dataset: Dataset, test_dataset: Dataset | None
    ) -> tuple[Programs, AccountedDataset]:
        """The programs (and a previous potential) of the fit, and the structures to fit:
        those pacemaker would drop silently (free atoms, lone atoms) are decided on."""
        executables = self.config.executables
        if test_dataset is not None:
            self.check_test_dataset(dataset, test_dataset)
        selecting = self.config.active_set.enabled
        programs = Programs(
            pacemaker=resolve_executable(executables.pacemaker),
            yaml2yace=resolve_executable(executables.pace_yaml2yace),
            activeset=resolve_executable(executables.pace_activeset),
            pace_select=resolve_executable(executables.pace_select) if selecting else None,
            previous=load_previous_potential(self.config.active_set) if selecting else None,
        )
        return programs, self.account_for_structures(dataset)

    def prepare(
        self,
        accounted: AccountedDataset,
        test_dataset: Dataset | None,
        workdir: Path,
        programs: Programs,
        environment: dict[str, str],
        budget_from: float | None = None,
    ) -> PreparedRun:
        """Everything before the fit, in a claimed and locked ``workdir``: reference energies,
        baseline, selection, the cost estimate, pacemaker's data file(s) and input.yaml.

        ``budget_from`` (time.monotonic() when the training began) sizes the fit on this
        machine, to ``fit.time_budget`` if one is set; None (a batch job) does not."""
        dataset = accounted.fit
        pace_select = programs.pace_select

        # 2. Decide from all the data: reference energies, baseline cutoffs, pacemaker's input.
        n_training = len(dataset)
        if pace_select is not None:
            n_training = requested_count(self.config.active_set, len(dataset), dataset.n_atoms)
            if n_training == len(dataset):  # "use all": nothing to select
                pace_select = None
        plan = self.plan_run(
            dataset,
            n_training=n_training,
            free_atom_energies=accounted.free_atom_energies,
            fitting=test_dataset is None,
        )

        # 3. Select the training structures by D-optimality (optional).
        selection = None
        training_set = dataset
        if pace_select is not None:
            with self._step("selecting structures (pace_select)"):
                selection = self._select(
                    dataset, plan, n_training, pace_select, programs.previous, workdir, environment
                )
            training_set = dataset.subset(selection.indices)

        # 3b. What the fit will cost; with a time budget, the iterations (and basis) it allows.
        sized = None
        if budget_from is not None:
            sized = self._size_fit(training_set, plan, time.monotonic() - budget_from, test_dataset)
            plan = replace(plan, pacemaker_input=sized.pacemaker_input)
            if sized.optimiser_time_s is not None:
                plan = replace(plan, pacemaker_input=with_deadline_callback(plan.pacemaker_input))

        # 4. Write the data file and input.yaml (a selection may have found fewer structures).
        if test_dataset is None:
            check_test_split(self.config.fit.test_size, len(training_set))
        with self._step(f"writing pacemaker's input ({len(training_set)} structures)"):
            self.write_inputs(training_set, workdir, plan, test_dataset)
        run = PendingRun(
            elements=dataset.elements,
            baseline=plan.baseline,
            reference_energies=plan.reference_energies,
            reference_energies_warning=plan.reference_energies_warning,
            shortest_distances=[(a, b, d) for (a, b), d in plan.shortest_distances.items()],
            selection=selection,
            provenance=self.provenance(dataset),
            fixed_test_set=test_dataset is not None,
        )
        return PreparedRun(workdir, run, training_set, test_dataset, sized)

    def read_fit(self, prepared: PreparedRun) -> dict[str, PredictionArrays]:
        """Right after pacemaker: metadata into its potential, and its predictions copied to a
        format that cannot run code; every structure and atom we wrote must be in them."""
        workdir, run = prepared.workdir, prepared.run
        output_yaml = workdir / OUTPUT_POTENTIAL_YAML
        self._require(output_yaml, "pacemaker finished but wrote no potential", PACEMAKER_LOG)
        try:
            add_metadata(output_yaml, potential_metadata(run.baseline, run.reference_energies))
        except (yaml.YAMLError, UnicodeDecodeError, AttributeError) as error:
            raise TrainerError(
                f"pacemaker wrote an unreadable {OUTPUT_POTENTIAL_YAML} "
                f"({type(error).__name__}: {str(error).splitlines()[0]})",
                workdir=workdir,
                log_path=workdir / PACEMAKER_LOG,
            ) from error
        self._require(workdir / TRAIN_PREDICTIONS, "pacemaker wrote no predictions", PACEMAKER_LOG)
        return convert_fit_predictions(
            workdir,
            prepared.training_set,
            prepared.test_dataset,
            weighting=self.config.fit.weighting,
            log_name=PACEMAKER_LOG,
        )

    def finish(
        self,
        prepared: PreparedRun,
        predictions: dict[str, PredictionArrays],
        environment: dict[str, str],
        job_result: JobResult | None = None,
        cost: FitCost | None = None,
        fit_stop: FitStop | None = None,
    ) -> Potential:
        """Everything after the fit: .yace, active set, record, safety gate, report.

        ``job_result``: the batch job that ran pace_activeset already; None runs it here.
        ``cost``: the fit's estimated and measured cost, for the record. ``fit_stop``: how
        the fit ended when it was resumed, stopped early or finished from an interim potential.
        """
        workdir, run = prepared.workdir, prepared.run
        # 6. Convert to .yace (under a temporary name: a .yace exists only when complete).
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

        # 7. Active set of the fitted potential: the extrapolation grade of new structures.
        if job_result is None:
            with self._step("active set (pace_activeset)"):
                active_set = build_active_set(
                    resolve_executable(self.config.executables.pace_activeset),
                    self.config.active_set,
                    workdir,
                    lambda program, arguments, log_name: self._run(
                        program, arguments, workdir, log_name, environment
                    ),
                )
        else:
            active_set = active_set_of_job(job_result, workdir)

        # 8. The record, with pacemaker's own errors of the final potential.
        potential = Potential(
            run_dir=workdir,
            trainer="pacemaker",
            yace_file=POTENTIAL_YACE,
            yaml_file=OUTPUT_POTENTIAL_YAML,
            active_set_file=active_set,
            gamma_tolerance=self.config.active_set.gamma_tolerance,
            elements=run.elements,
            cutoff=self.config.cutoff,
            baseline=run.baseline,
            reference_energies=run.reference_energies,
            reference_energies_warning=run.reference_energies_warning,
            train_metrics=predictions[TRAIN_PREDICTIONS].metrics,
            test_metrics=(
                predictions[TEST_PREDICTIONS].metrics if TEST_PREDICTIONS in predictions else None
            ),
            selection=run.selection,
            cost=cost,
            fit_stop=fit_stop,
            provenance=run.provenance,
        )
        if TEST_PREDICTIONS in predictions:
            warn_about_test_set(predictions[TEST_PREDICTIONS].symbols.tolist(), potential.elements)

        # 9. The safety gate on the deployed potential (ACE + baseline): isolated dimers of
        #    every element pair, and training structures compressed to 0.6 of their volume.
        with self._step("safety checks (dimers, compression)"):
            safety = run_safety_checks(
                potential.ase_calculator(),
                potential.elements,
                potential.cutoff,
                run.distances(),
                prepared.training_set,
                workdir / DIMERS_PNG,
            )
            potential = potential.model_copy(
                update={
                    "dimer_checks": safety.dimer_checks,
                    "compression_checks": safety.compression_checks,
                    "checks_passed": safety.passed,
                }
            )

        # 10. potential.json is written last: it marks a finished run (checks_passed says
        #     whether it is fit for use).
        potential.save()

        # 11. The training report; a finished potential stands without it.
        with self._step("training report"):
            self._report(workdir)

        # 12. A potential that failed the gate is not shipped silently.
        if not safety.passed:
            message = failed_checks_message(safety.failures, workdir)
            if not self.config.accept_failed_checks:
                raise FailedChecksError(message, failures=safety.failures, workdir=workdir)
            log.warning("%s\naccepted (accept_failed_checks)", message)
        return potential

    def _size_fit(
        self,
        training_set: Dataset,
        plan: RunPlan,
        elapsed_s: float,
        test_dataset: Dataset | None,
    ) -> SizedFit:
        """The cost estimate, logged before the fit; the progress bar counts the planned
        iterations."""
        sized = size_fit(
            plan.pacemaker_input,
            training_set,
            self.config.fit,
            basis_given=self.config.ace_params.number_of_functions_per_element is not None,
            threads=self.config.threads or os.cpu_count() or 1,
            elapsed_s=elapsed_s,
        )
        log_estimate(sized, self.config.fit, len(training_set), fixed_test_set=bool(test_dataset))
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
        previous = load_previous_potential(self.config.active_set)
        wanted = requested_count(self.config.active_set, len(dataset), dataset.n_atoms)
        plan = self.plan_run(dataset, n_training=wanted, fitting=False)
        environment = program_environment(self.config)
        with claim_run_directory(workdir) as run:
            if wanted == len(dataset):
                return keep_all(dataset, run.path)
            return self._select(dataset, plan, wanted, pace_select, previous, run.path, environment)

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
