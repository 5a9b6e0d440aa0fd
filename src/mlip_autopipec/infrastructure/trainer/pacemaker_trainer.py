"""The pacemaker trainer: fits an ACE potential with pacemaker and converts it for deployment."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.lineage import Lineage
from mlip_autopipec.domain_models.neighbours import NeighbourTable
from mlip_autopipec.domain_models.potential import Potential, Selection
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.rundir.claim import claim_run_directory, warn_if_resumable
from mlip_autopipec.infrastructure.rundir.files import (
    INPUT_YAML,
    NEIGHBOURS_FILE,
    REPLACED,
    TEST_SET,
    TRAINING_SET,
)
from mlip_autopipec.infrastructure.rundir.records import (
    PendingRun,
    RunRecord,
    record_data_files,
    refuse_running_job,
)
from mlip_autopipec.infrastructure.trainer.active_set import activeset_step
from mlip_autopipec.infrastructure.trainer.after_fit import FitEnd, ReportBuilder, after_fit
from mlip_autopipec.infrastructure.trainer.base import BaseTrainer
from mlip_autopipec.infrastructure.trainer.cost.budget import (
    SizedFit,
    size_fit,
    with_deadline,
    with_deadline_callback,
)
from mlip_autopipec.infrastructure.trainer.cost.record import estimated_cost, log_estimate
from mlip_autopipec.infrastructure.trainer.generations.generation import (
    Generation,
    choose_start,
    lineage,
    next_generation,
    plan_generation,
    started_fit,
)
from mlip_autopipec.infrastructure.trainer.plan import (
    CheckedRun,
    PreparedRun,
    RunPlan,
    check_test_split,
    plan_run,
    write_inputs,
)
from mlip_autopipec.infrastructure.trainer.programs.launcher import Launcher, LocalLauncher
from mlip_autopipec.infrastructure.trainer.programs.profile import (
    FIT_PROGRAMS,
    Program,
    ProgramProfile,
)
from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink
from mlip_autopipec.infrastructure.trainer.programs.steps import ProgramStep
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
    ``launcher`` runs the compute steps (here by default; a batch job: ``create_trainer``
    chooses). ``report`` builds the training report of a finished run (None: no report).
    """

    def __init__(
        self,
        config: TrainerConfig,
        on_output_line: ProgressSink | None = None,
        *,
        launcher: Launcher | None = None,
        report: ReportBuilder | None = None,
    ) -> None:
        super().__init__(config)
        self.progress = on_output_line
        self.launcher: Launcher = launcher or LocalLauncher()
        self.report = report
        if isinstance(config.execution, BatchExecution) and not self.launcher.remote:
            raise ConfigurationError(
                [
                    (
                        "trainer.execution",
                        f"{config.execution.type} runs the fit as a batch job: build the "
                        "trainer with create_trainer, which gives it the batch launcher",
                    )
                ]
            )

    def with_config(self, config: TrainerConfig) -> PacemakerTrainer:
        """This trainer with another config (the same progress, launcher and report)."""
        return PacemakerTrainer(config, self.progress, launcher=self.launcher, report=self.report)

    def train(
        self,
        dataset: Dataset,
        workdir: Path,
        *,
        test_dataset: Dataset | None = None,
        previous: Potential | None = None,
    ) -> Potential:
        """``previous``: the finished run this one is the next generation of (docs:
        how-to/generations): its data accumulate with ``dataset``, its energy scale is kept and the
        fit starts from its potential where it can."""
        if previous is None:
            return self.fit(dataset, workdir, test_dataset=test_dataset)
        # The parent's neighbour searches: only the new structures are searched.
        known = NeighbourTable.load(previous.run_dir / NEIGHBOURS_FILE, self.config.cutoff)
        generation = next_generation(self.config, dataset, previous, test_dataset, known)
        accumulated = generation.accumulated
        trainer = self.with_config(generation.config)
        trainer.neighbours.update(known)
        return trainer.fit(
            accumulated.training, workdir, test_dataset=accumulated.test, generation=generation
        )

    def fit(
        self,
        dataset: Dataset,
        workdir: Path,
        *,
        test_dataset: Dataset | None = None,
        generation: Generation | None = None,
    ) -> Potential:
        """Fit ``dataset`` in ``workdir`` (``generation``: as the next generation of a run)."""
        started = time.monotonic()  # a time budget covers the whole training
        remote = self.launcher.remote
        # 1. Check: the programs, the data (the scheduler), before anything is written.
        checked = self.check_inputs(dataset, test_dataset, workdir, fresh=generation is None)
        warn_if_resumable(workdir)
        with claim_run_directory(workdir, replaces=REPLACED) as run:
            # 2. Plan and write the inputs: energy scale, baseline, selection, cost, input.yaml
            #    (and the run's record, which train --resume and finish read).
            budget_from = None if remote else started  # a batch job's budget starts there
            prepared = self.prepare(checked, run.path, budget_from, generation)
            RunRecord(config=self.config, run=prepared.run).save(run.path)
            # 3. Run pacemaker (ended at a time budget's deadline, if any), then pace_activeset:
            #    here, or as one batch job (docs: how-to/clusters).
            fit_started = None if remote else datetime.now()  # local time, as pacemaker's log
            steps = self.compute_steps(checked.profile, prepared)
            runner = self.launcher.runner(self.config, prepared.run, checked.profile)
            result = runner.run_steps(steps, run.path)
            # 4. Everything after the fit: outputs, cost, .yace, checks, record, report.
            return self.after_fit(prepared, FitEnd(result, started=fit_started), checked.profile)

    def after_fit(self, prepared: PreparedRun, end: FitEnd, profile: ProgramProfile) -> Potential:
        """The one path after pacemaker's steps, however they ran (``after_fit.after_fit``)."""
        return after_fit(self.config, prepared, end, profile, self.report)

    def check_inputs(
        self,
        dataset: Dataset,
        test_dataset: Dataset | None,
        workdir: Path,
        *,
        fresh: bool = True,
    ) -> CheckedRun:
        """The scheduler and its queue (batch), the programs (and a previous potential) of the
        fit, the structures to fit (those pacemaker would drop silently, free atoms and lone
        atoms, are decided on), the test set (a ``fresh`` fit without one keeps copies of a
        structure on one side: ``split_copies``; a next generation's is its parent's and a
        share) and a batch job that may still write in ``workdir``."""
        self.launcher.check(self.config, Path(workdir).absolute())
        if fresh:
            dataset, test_dataset = self.split_copies(dataset, test_dataset)
        if test_dataset is not None:
            self.check_test_dataset(dataset, test_dataset)
        selecting = self.config.active_set.enabled
        profile = self.profile(selecting=selecting)
        previous = load_previous_potential(self.config.active_set) if selecting else None
        accounted = self.account_for_structures(dataset)
        refuse_running_job(workdir)
        return CheckedRun(profile, previous, accounted, test_dataset)

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
        free_atom_energies: dict[str, float] | None = None,
        fitting: bool = True,
    ) -> RunPlan:
        """Reference energies, baseline and pacemaker's input of this config (``plan_run``)."""
        return plan_run(
            self.config,
            dataset,
            n_training=n_training,
            free_atom_energies=free_atom_energies,
            fitting=fitting,
            neighbours=self.neighbours,
        )

    def prepare(
        self,
        checked: CheckedRun,
        workdir: Path,
        budget_from: float | None = None,
        generation: Generation | None = None,
    ) -> PreparedRun:
        """Everything before the fit, in a claimed and locked ``workdir``: reference energies,
        baseline, selection, the cost estimate, pacemaker's data file(s) and input.yaml.

        ``budget_from`` (time.monotonic() when the training began) counts the time spent so far
        against ``fit.time_budget``; None (a batch job, whose budget starts on its node) counts
        none. ``generation``: the start from the parent, and the lineage in the record."""
        accounted, profile, test_dataset = checked.accounted, checked.profile, checked.test
        dataset = accounted.fit

        # Decide from all the data: reference energies, baseline cutoffs, pacemaker's input.
        n_training = len(dataset)
        if self.config.active_set.enabled:
            n_training = requested_count(self.config.active_set, len(dataset), dataset.n_atoms)
        fitting, free = test_dataset is None, accounted.free_atom_energies
        if generation is None:
            plan = self.plan_run(
                dataset, n_training=n_training, free_atom_energies=free, fitting=fitting
            )
        else:
            plan, generation = plan_generation(
                generation,
                dataset,
                n_training=n_training,
                free_atom_energies=free,
                fitting=fitting,
                neighbours=self.neighbours,
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
        # time budget, the iterations (and basis) it allows; a next generation starts from its
        # parent where it can (its basis and fit.upfit_maxiter).
        elapsed_s = 0.0 if budget_from is None else time.monotonic() - budget_from
        sized = self._size_fit(training_set, plan, elapsed_s, test_dataset, profile)
        record: Lineage | None = None
        if generation is not None:
            start = choose_start(generation, sized.pacemaker_input, workdir)
            sized = started_fit(sized, start, profile)
            record = lineage(generation, start)
            log.info("generation %d: %s (%s)", record.generation, start.fitted_from, start.reason)
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
        # What was written, so that resume, finish and a next generation can check it.
        counts = {TRAINING_SET: len(training_set)}
        if test_dataset is not None:
            counts[TEST_SET] = len(test_dataset)
        provenance = self.provenance(dataset).model_copy(
            update={"data_files": record_data_files(workdir, counts)}
        )
        run = PendingRun(
            elements=dataset.elements,
            baseline=plan.baseline,
            reference_energies=plan.reference_energies,
            reference_energies_warning=plan.reference_energies_warning,
            shortest_distances=[(a, b, d) for (a, b), d in plan.shortest_distances.items()],
            selection=selection,
            provenance=provenance,
            fixed_test_set=test_dataset is not None,
            estimate=estimated_cost(sized, self.config.fit),
            lineage=record,
        )
        return PreparedRun(workdir, run, training_set, test_dataset, sized)

    def compute_steps(self, profile: ProgramProfile, prepared: PreparedRun) -> list[ProgramStep]:
        """What the fit runs on the compute node: pacemaker, then pace_activeset (on large data
        it needs the node too). A time budget's deadline reaches pacemaker's callback."""
        fit = profile.program_step("pacemaker", [INPUT_YAML], title="fitting (pacemaker)")
        return [with_deadline(fit, prepared.sized), activeset_step(profile, self.config.active_set)]

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
        settings = self.config.active_set
        inputs = write_selection_inputs(dataset, plan, previous, workdir, settings.gamma_tolerance)
        return select_structures(
            dataset, inputs, wanted=wanted, settings=settings, workdir=workdir, profile=profile
        )
