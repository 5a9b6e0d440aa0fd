"""The pacemaker trainer: fits an ACE potential with pacemaker and converts it for deployment."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from mlip_autopipec.analysis.dimers import DIMERS_PNG
from mlip_autopipec.analysis.safety import gate_potential, refuse_failed
from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.fit_stop import FitStop
from mlip_autopipec.domain_models.potential import FitCost, Potential, Selection
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.pacemaker.deadline import DEADLINE_ENV
from mlip_autopipec.infrastructure.pacemaker.early_stop import early_stop_record
from mlip_autopipec.infrastructure.pacemaker.outputs import PredictionArrays
from mlip_autopipec.infrastructure.rundir.claim import claim_run_directory
from mlip_autopipec.infrastructure.rundir.files import (
    INPUT_YAML,
    OUTPUT_POTENTIAL_YAML,
    PACEMAKER_LOG,
    REPLACED,
    TEST_PREDICTIONS,
    TEST_SET,
    TRAIN_PREDICTIONS,
)
from mlip_autopipec.infrastructure.rundir.records import (
    CheckedRun,
    PendingRun,
    PreparedRun,
    refuse_running_job,
)
from mlip_autopipec.infrastructure.trainer.active_set import active_set_of, activeset_step
from mlip_autopipec.infrastructure.trainer.after_fit import convert_to_yace, read_fit
from mlip_autopipec.infrastructure.trainer.base import BaseTrainer
from mlip_autopipec.infrastructure.trainer.cost.budget import (
    SizedFit,
    size_fit,
    with_deadline_callback,
)
from mlip_autopipec.infrastructure.trainer.cost.record import (
    cost_of_steps,
    estimated_cost,
    log_estimate,
    warn_about_test_set,
)
from mlip_autopipec.infrastructure.trainer.interrupted.interim import RunRecord, warn_if_resumable
from mlip_autopipec.infrastructure.trainer.plan import (
    RunPlan,
    check_test_split,
    plan_pacemaker_run,
    write_inputs,
)
from mlip_autopipec.infrastructure.trainer.programs.profile import (
    FIT_PROGRAMS,
    Program,
    ProgramProfile,
    StepRunner,
)
from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink
from mlip_autopipec.infrastructure.trainer.programs.steps import JobResult, ProgramStep
from mlip_autopipec.infrastructure.trainer.selection import (
    keep_all,
    load_previous_potential,
    requested_count,
    select_structures,
    write_selection_inputs,
)

log = logging.getLogger(__name__)


class PacemakerTrainer(BaseTrainer):
    """Fits ACE with ``pacemaker`` and converts the result to ``.yace`` with ``pace_yaml2yace``.

    ``on_output_line`` follows the run: the programs' output lines and the named steps.
    """

    def __init__(self, config: TrainerConfig, on_output_line: ProgressSink | None = None) -> None:
        super().__init__(config)
        self.progress = on_output_line

    def train(
        self,
        dataset: Dataset,
        workdir: Path,
        *,
        test_dataset: Dataset | None = None,
        previous: Potential | None = None,
    ) -> Potential:
        if previous is not None:  # a next generation (README, "Generations")
            from mlip_autopipec.infrastructure.trainer.generations.generation import (
                train_generation,
            )

            return train_generation(self, dataset, workdir, previous, test_dataset)
        started = time.monotonic()  # a time budget covers the whole training
        # 1. Check: the programs, the data (the scheduler), before anything is written.
        checked = self.check_inputs(dataset, test_dataset, workdir)
        warn_if_resumable(workdir)
        with claim_run_directory(workdir, replaces=self.replaced()) as run:
            # 2. Plan and write the inputs: energy scale, baseline, selection, cost, input.yaml
            #    (and the run's record, which train --resume and finish read).
            budget_from = None if self._batch() else started
            prepared = self.prepare(checked, test_dataset, run.path, budget_from=budget_from)
            RunRecord(config=self.config, run=prepared.run).save(run.path)
            # 3. Run pacemaker (ended at a time budget's deadline, if any), then pace_activeset:
            #    here, or as one batch job (README, "On a cluster").
            fit_started = datetime.now()  # local time, as pacemaker's log
            steps = self.compute_steps(checked.profile, prepared)
            result = self._step_runner(checked.profile, prepared).run_steps(steps, run.path)
            # 4. Read the outputs: metadata into the potential, its predictions, the cost.
            predictions = read_fit(prepared, self.config.fit)
            estimate, log_path = prepared.run.estimate, run.path / PACEMAKER_LOG
            cost = cost_of_steps(
                run.path,
                log_path,
                estimate,
                result,
                fit_started,
                batch=self._batch(),
                maxiter_setting=prepared.run.maxiter_setting,
            )
            fit_stop = early_stop_record(log_path)
            # 5. Check and record: .yace, active set, safety gate, potential.json, report.
            return self.finish(
                prepared, predictions, result, checked.profile, cost=cost, fit_stop=fit_stop
            )

    def check_inputs(
        self, dataset: Dataset, test_dataset: Dataset | None, workdir: Path
    ) -> CheckedRun:
        """The scheduler and its queue (batch), the programs (and a previous potential) of the
        fit, the structures to fit (those pacemaker would drop silently, free atoms and lone
        atoms, are decided on) and a batch job that may still write in ``workdir``."""
        execution = self.config.execution
        if isinstance(execution, BatchExecution):
            from mlip_autopipec.infrastructure.trainer.batch.runner import scheduler_for

            scheduler_for(execution, Path(workdir).absolute()).check()
        if test_dataset is not None:
            self.check_test_dataset(dataset, test_dataset)
        selecting = self.config.active_set.enabled
        profile = self.profile(selecting=selecting)
        previous = load_previous_potential(self.config.active_set) if selecting else None
        accounted = self.account_for_structures(dataset)
        refuse_running_job(workdir)
        return CheckedRun(profile, previous, accounted)

    def replaced(self) -> tuple[str, ...]:
        """The files of an earlier run of ours that a new fit replaces in its run directory."""
        if not self._batch():
            return REPLACED
        from mlip_autopipec.infrastructure.rundir.files import BATCH_FILES

        return (*REPLACED, *BATCH_FILES)

    def _batch(self) -> bool:
        return isinstance(self.config.execution, BatchExecution)

    def _step_runner(self, profile: ProgramProfile, prepared: PreparedRun) -> StepRunner:
        """Who runs the compute steps: the profile here, or a batch job."""
        if not self._batch():
            return profile
        from mlip_autopipec.infrastructure.trainer.batch.runner import BatchRunner

        return BatchRunner(self.config, prepared.run, self.progress)

    def profile(self, *, selecting: bool = False) -> ProgramProfile:
        """How this config's programs run here (pace_select too when ``selecting``)."""
        programs: tuple[Program, ...] = (
            (*FIT_PROGRAMS, "pace_select") if selecting else FIT_PROGRAMS
        )
        return ProgramProfile.for_config(self.config, self.progress, programs)

    def plan_run(
        self,
        dataset: Dataset,
        *,
        n_training: int | None = None,
        free_atom_energies: Mapping[str, float] | None = None,
        fitting: bool = True,
    ) -> RunPlan:
        """Reference energies, baseline and pacemaker's input (``plan_pacemaker_run``)."""
        data = self.plan_data(dataset, free_atom_energies)
        return plan_pacemaker_run(
            self.config, dataset, data, n_training=n_training, fitting=fitting
        )

    def prepare(
        self,
        checked: CheckedRun,
        test_dataset: Dataset | None,
        workdir: Path,
        budget_from: float | None = None,
    ) -> PreparedRun:
        """Everything before the fit, in a claimed and locked ``workdir``: reference energies,
        baseline, selection, the cost estimate, pacemaker's data file(s) and input.yaml.

        ``budget_from`` (time.monotonic() when the training began) counts the time spent so far
        against ``fit.time_budget``; None (a batch job, whose budget starts on its node) counts
        none."""
        accounted, profile = checked.accounted, checked.profile
        dataset = accounted.fit

        # Decide from all the data: reference energies, baseline cutoffs, pacemaker's input.
        n_training = len(dataset)
        if self.config.active_set.enabled:
            n_training = requested_count(self.config.active_set, len(dataset), dataset.n_atoms)
        plan = self.plan_run(
            dataset,
            n_training=n_training,
            free_atom_energies=accounted.free_atom_energies,
            fitting=test_dataset is None,
        )

        # Select the training structures by D-optimality (optional; "use all" selects none).
        selection = None
        training_set = dataset
        if n_training < len(dataset):
            with profile.step("selecting structures (pace_select)"):
                selection = self._select(
                    dataset, plan, n_training, checked.previous, workdir, profile
                )
            training_set = dataset.subset(selection.indices)

        # What the fit will cost (a batch job's: measured or modelled on this machine); with a
        # time budget, the iterations (and basis) it allows.
        elapsed_s = 0.0 if budget_from is None else time.monotonic() - budget_from
        sized = self._size_fit(training_set, plan, elapsed_s, test_dataset, profile)
        plan = replace(plan, pacemaker_input=sized.pacemaker_input)
        if sized.optimiser_time_s is not None:
            plan = replace(plan, pacemaker_input=with_deadline_callback(plan.pacemaker_input))

        # Write the data file and input.yaml (a selection may have found fewer structures).
        if test_dataset is None:
            check_test_split(self.config.fit.test_size, len(training_set))
        with profile.step(f"writing pacemaker's input ({len(training_set)} structures)"):
            write_inputs(training_set, workdir, plan, test_dataset)
            if test_dataset is not None:  # its safe copy, read later instead of the pickle
                test_dataset.write(workdir / TEST_SET)
        run = PendingRun(
            elements=dataset.elements,
            baseline=plan.baseline,
            reference_energies=plan.reference_energies,
            reference_energies_warning=plan.reference_energies_warning,
            shortest_distances=[(a, b, d) for (a, b), d in plan.shortest_distances.items()],
            selection=selection,
            provenance=self.provenance(dataset),
            fixed_test_set=test_dataset is not None,
            estimate=estimated_cost(sized, self.config.fit),
        )
        return PreparedRun(workdir, run, training_set, test_dataset, sized)

    def compute_steps(self, profile: ProgramProfile, prepared: PreparedRun) -> list[ProgramStep]:
        """What the fit runs on the compute node: pacemaker, then pace_activeset (on large data
        it needs the node too). A time budget's deadline reaches pacemaker's callback."""
        fit = profile.program_step("pacemaker", [INPUT_YAML], title="fitting (pacemaker)")
        sized = prepared.sized
        if sized is not None and sized.optimiser_time_s is not None:
            deadline = {DEADLINE_ENV: repr(time.time() + sized.optimiser_time_s)}
            fit = fit.model_copy(update={"environment": deadline})
        return [fit, activeset_step(profile, self.config.active_set)]

    def finish(
        self,
        prepared: PreparedRun,
        predictions: dict[str, PredictionArrays],
        result: JobResult,
        profile: ProgramProfile,
        cost: FitCost | None = None,
        fit_stop: FitStop | None = None,
    ) -> Potential:
        """Everything after the compute steps (``result``): .yace, active set, record, safety
        gate, report. ``cost``: the fit's estimated and measured cost, for the record;
        ``fit_stop``: how the fit ended when it was resumed, stopped early or finished from an
        interim potential."""
        workdir, run = prepared.workdir, prepared.run
        # Convert to .yace, the reference energies as its E0.
        with profile.step("converting to .yace (pace_yaml2yace)"):
            yace = convert_to_yace(prepared, profile)

        # Active set of the fitted potential: the extrapolation grade of new structures.
        active_set = active_set_of(result, workdir)

        # The record, with pacemaker's own errors of the final potential.
        potential = Potential(
            run_dir=workdir,
            trainer="pacemaker",
            yace_file=yace,
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
            lineage=run.lineage,
            fit_stop=fit_stop,
            provenance=run.provenance,
        )
        if TEST_PREDICTIONS in predictions:
            warn_about_test_set(predictions[TEST_PREDICTIONS].symbols.tolist(), potential.elements)

        # The safety gate on the deployed potential (ACE + baseline): dimers, compression.
        with profile.step("safety checks (dimers, compression)"):
            potential, safety = gate_potential(
                potential, run.distances(), prepared.training_set, workdir / DIMERS_PNG
            )

        # potential.json is written last: it marks a finished run (checks_passed says
        # whether it is fit for use).
        potential.save()

        # The training report; a finished potential stands without it.
        from mlip_autopipec.report import build_report_or_warn  # the report imports this package

        with profile.step("training report"):
            build_report_or_warn(workdir)

        refuse_failed(safety, workdir, accept=self.config.accept_failed_checks)
        return potential

    def _size_fit(
        self,
        training_set: Dataset,
        plan: RunPlan,
        elapsed_s: float,
        test_dataset: Dataset | None,
        profile: ProgramProfile,
    ) -> SizedFit:
        """The cost estimate (measured by the profile's pacemaker on a sample of the data when
        that is cheap), logged before the fit; the progress display counts the planned
        iterations."""
        execution = self.config.execution
        job_cores = execution.cpus if isinstance(execution, BatchExecution) else None
        sized = size_fit(
            plan.pacemaker_input,
            training_set,
            self.config.fit,
            basis_given=self.config.ace_params.number_of_functions_per_element is not None,
            threads=self.config.threads or job_cores or os.cpu_count() or 1,
            elapsed_s=elapsed_s,
            profile=profile,
            cores=job_cores,
        )
        log_estimate(sized, self.config.fit, len(training_set), fixed_test_set=bool(test_dataset))
        profile.plan_iterations(sized.planned_iterations)
        return sized

    def select(self, dataset: Dataset, workdir: Path) -> Selection:
        """D-optimal selection alone (``trainer.active_set``), e.g. before sending structures
        to DFT; its files go into ``workdir/selection``. The same steps as a fit's selection:
        check, plan, write pace_select's inputs, run it, read and record what it chose."""
        if not self.config.active_set.enabled:
            raise ConfigurationError(
                [("trainer.active_set.enabled", "must be true (with max_structures or fraction)")]
            )
        profile = ProgramProfile.for_config(self.config, self.progress, ("pace_select",))
        previous = load_previous_potential(self.config.active_set)
        wanted = requested_count(self.config.active_set, len(dataset), dataset.n_atoms)
        plan = self.plan_run(dataset, n_training=wanted, fitting=False)
        with claim_run_directory(workdir) as run:
            if wanted == len(dataset):
                return keep_all(dataset, run.path)
            return self._select(dataset, plan, wanted, previous, run.path, profile)

    def _select(
        self,
        dataset: Dataset,
        plan: RunPlan,
        wanted: int,
        previous: Potential | None,
        workdir: Path,
        profile: ProgramProfile,
    ) -> Selection:
        inputs = write_selection_inputs(dataset, plan, previous, workdir)
        settings = self.config.active_set
        return select_structures(
            dataset, inputs, wanted=wanted, settings=settings, workdir=workdir, profile=profile
        )
