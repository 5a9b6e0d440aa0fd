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
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.isolated_atoms import AccountedDataset
from mlip_autopipec.domain_models.potential import Potential, Selection
from mlip_autopipec.errors import ConfigurationError, FailedChecksError, TrainerError
from mlip_autopipec.infrastructure.trainer.base import (
    DATA_FILE,
    BaseTrainer,
    RunPlan,
    check_test_split,
)
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
    TEST_PREDICTIONS_NPZ,
    TRAIN_PREDICTIONS,
    TRAIN_PREDICTIONS_NPZ,
    PredictionArrays,
    convert_predictions,
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

    def train(
        self, dataset: Dataset, workdir: Path, *, test_dataset: Dataset | None = None
    ) -> Potential:
        started = time.monotonic()  # a time budget covers the whole training
        executables = self.config.executables
        if test_dataset is not None:
            self.check_test_dataset(dataset, test_dataset)
        selecting = self.config.active_set.enabled
        # 1. Find the programs (and a previous potential) before anything is written.
        pacemaker = resolve_executable(executables.pacemaker)
        yaml2yace = resolve_executable(executables.pace_yaml2yace)
        activeset = resolve_executable(executables.pace_activeset)
        pace_select = resolve_executable(executables.pace_select) if selecting else None
        previous = self._previous_potential() if selecting else None
        # Structures pacemaker would drop silently (free atoms, lone atoms) are decided on.
        accounted = self.account_for_structures(dataset)
        replaced = (*RESULT_FILES, POTENTIAL_YACE, ACTIVE_SET)
        with claim_run_directory(workdir, replaces=replaced) as run:
            return self._train(
                accounted,
                test_dataset,
                run.path,
                pacemaker,
                yaml2yace,
                activeset,
                pace_select,
                previous,
                started,
            )

    def _train(
        self,
        accounted: AccountedDataset,
        test_dataset: Dataset | None,
        workdir: Path,
        pacemaker: str,
        yaml2yace: str,
        activeset: str,
        pace_select: str | None,
        previous: Potential | None,
        started: float,
    ) -> Potential:
        """The run itself, in a claimed and locked ``workdir`` (``started``: time.monotonic()
        when train() was called, from which a time budget counts)."""
        dataset = accounted.fit
        environment = program_environment(self.config)

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
                    dataset, plan, n_training, pace_select, previous, workdir, environment
                )
            training_set = dataset.subset(selection.indices)

        # 3b. What the fit will cost; with a time budget, the iterations (and basis) it allows.
        sized = self._size_fit(training_set, plan, time.monotonic() - started, test_dataset)
        plan = replace(plan, pacemaker_input=sized.pacemaker_input)
        fit_environment = dict(environment)
        if sized.optimiser_time_s is not None:
            plan = replace(plan, pacemaker_input=with_deadline_callback(plan.pacemaker_input))
            fit_environment[DEADLINE_ENV] = repr(time.time() + sized.optimiser_time_s)

        # 4. Write the data file and input.yaml (a selection may have found fewer structures).
        if test_dataset is None:
            check_test_split(self.config.fit.test_size, len(training_set))
        with self._step(f"writing pacemaker's input ({len(training_set)} structures)"):
            self.write_inputs(training_set, workdir, plan, test_dataset)

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
            try:
                add_metadata(
                    output_yaml, potential_metadata(plan.baseline, plan.reference_energies)
                )
            except (yaml.YAMLError, UnicodeDecodeError, AttributeError) as error:
                raise TrainerError(
                    f"pacemaker wrote an unreadable {OUTPUT_POTENTIAL_YAML} "
                    f"({type(error).__name__}: {str(error).splitlines()[0]})",
                    workdir=workdir,
                    log_path=workdir / PACEMAKER_LOG,
                ) from error

            # Its predictions, copied at once to a format that cannot run code; every
            # structure and atom we wrote must be in them.
            predictions = self._convert_predictions(workdir, training_set, test_dataset)

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

        # 8. The record, with pacemaker's own errors of the final potential.
        potential = Potential(
            run_dir=workdir,
            trainer="pacemaker",
            yace_file=POTENTIAL_YACE,
            yaml_file=OUTPUT_POTENTIAL_YAML,
            active_set_file=active_set,
            gamma_tolerance=self.config.active_set.gamma_tolerance,
            elements=dataset.elements,
            cutoff=self.config.cutoff,
            baseline=plan.baseline,
            reference_energies=plan.reference_energies,
            reference_energies_warning=plan.reference_energies_warning,
            train_metrics=predictions[TRAIN_PREDICTIONS].metrics,
            test_metrics=(
                predictions[TEST_PREDICTIONS].metrics if TEST_PREDICTIONS in predictions else None
            ),
            selection=selection,
            cost=cost,
            provenance=self.provenance(dataset),
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
                plan.shortest_distances,
                training_set,
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

    def _convert_predictions(
        self, workdir: Path, training_set: Dataset, test_dataset: Dataset | None
    ) -> dict[str, PredictionArrays]:
        """pacemaker's ``*_pred.pckl.gzip``, just written, copied to ``.npz``; raises
        TrainerError when pacemaker used other numbers of structures or atoms than we wrote
        (``test_dataset``: the fixed test set we wrote beside the training data)."""
        self._require(workdir / TRAIN_PREDICTIONS, "pacemaker wrote no predictions", PACEMAKER_LOG)
        written_sets = [training_set] if test_dataset is None else [training_set, test_dataset]
        symbols = {s.name: s.atoms.get_chemical_symbols() for s in training_set}
        test_symbols = symbols
        if test_dataset is not None:
            test_symbols = {s.name: s.atoms.get_chemical_symbols() for s in test_dataset}
        predictions = {
            name: convert_predictions(workdir / name, workdir / npz, known)
            for name, npz, known in (
                (TRAIN_PREDICTIONS, TRAIN_PREDICTIONS_NPZ, symbols),
                (TEST_PREDICTIONS, TEST_PREDICTIONS_NPZ, test_symbols),
            )
            if (workdir / name).exists()
        }
        used = (
            sum(len(p.n_atoms) for p in predictions.values()),
            sum(int(p.n_atoms.sum()) for p in predictions.values()),
        )
        written = (
            sum(len(written_set) for written_set in written_sets),
            sum(written_set.n_atoms for written_set in written_sets),
        )
        if used != written:
            message = (
                f"pacemaker fitted {used[0]} structures ({used[1]} atoms) of the {written[0]} "
                f"({written[1]} atoms) in {DATA_FILE}"
            )
            if self.config.fit.weighting != "energy_based":
                raise TrainerError(
                    f"{message}: it dropped some; see {PACEMAKER_LOG}",
                    workdir=workdir,
                    log_path=workdir / PACEMAKER_LOG,
                )
            log.warning("%s: fit.weighting energy_based leaves out high-energy structures", message)
        return predictions

    def _size_fit(
        self,
        training_set: Dataset,
        plan: RunPlan,
        elapsed_s: float,
        test_dataset: Dataset | None,
    ) -> SizedFit:
        """The cost estimate, logged before the fit; the progress bar counts the planned
        iterations."""
        fit = self.config.fit
        if test_dataset is None:
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
