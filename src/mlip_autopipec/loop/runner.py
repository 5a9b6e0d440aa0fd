"""The loop's steps, in order: generation 0 (label, train), then explore → select → label → train
until a stop criterion holds. A step whose record exists is skipped; the others are (re)done."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ase.io
from ase import Atoms

from mlip_autopipec.config.loop import LoopConfig
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.domain_models.potential import load_finished_run as load_finished
from mlip_autopipec.errors import FailedChecksError, TrainerError
from mlip_autopipec.loop.initial import copies_for_active_set, initial_structures
from mlip_autopipec.loop.parts import LoopParts
from mlip_autopipec.loop.records import (
    CANDIDATES_FILE,
    EXPLORE,
    LABEL,
    LABEL_CACHE_DIR,
    LABELLED_FILE,
    SELECT,
    SELECTED_FILE,
    TRAIN,
    ExploreRecord,
    LabelRecord,
    Record,
    SelectRecord,
    TrainRecord,
    read_record,
    record_path,
    step_dir,
    write_record,
)
from mlip_autopipec.loop.stop import Stop, check_caps, convergence, oracle_calls_made

log = logging.getLogger("mlip_autopipec.loop")

R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class LoopInputs:
    """What a loop works from: its config, starting structures, optional data and test set."""

    config: LoopConfig
    structures: list[Atoms]
    data: Dataset | None
    test_data: Dataset | None


class LoopRunner:
    """Runs the steps of the loop in ``loop_dir`` (claimed by the caller)."""

    def __init__(self, loop_dir: Path, inputs: LoopInputs, parts: LoopParts) -> None:
        self.loop_dir = loop_dir
        self.inputs = inputs
        self.config = inputs.config
        self.parts = parts

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> Stop:
        """Every step still to do, until a stop criterion holds; the stop, recorded by the
        caller."""
        potential = self._generation_zero()
        iteration = 1
        while True:
            # The last generation is explored too: whether it converged is the loop's result.
            stop = check_caps(self.loop_dir, self.config.loop, iteration, exploring=True)
            if stop is not None:
                return stop
            explored = self._explore(iteration, potential)
            fit_note = potential.cost.still_improving if potential.cost is not None else None
            converged = convergence(
                explored, self.config.loop.converged_fraction, iteration, fit_note
            )
            if converged is not None:
                return converged
            stop = check_caps(self.loop_dir, self.config.loop, iteration, exploring=False)
            if stop is not None:
                return stop
            selected = self._select(iteration, potential)
            if not selected:
                why = (
                    "the selection kept none of the candidates (their environments add nothing "
                    "to the active set)"
                    if explored.n_candidates
                    else "MD gave no candidate, yet not every trajectory ran its full length"
                )
                return Stop("nothing_selected", f"iteration {iteration}: {why}: nothing to label")
            labelled = self._label(iteration, selected)
            if labelled is None:
                return Stop(
                    "nothing_labelled",
                    f"iteration {iteration}: the oracle labelled none of the selected structures "
                    f"(see {record_path(self.loop_dir, iteration, LABEL)})",
                )
            potential = self._train(iteration, labelled, potential)
            iteration += 1

    def _generation_zero(self) -> Potential:
        data = self.inputs.data
        if data is None:
            settings = self.config.loop.initial_structures
            copies = copies_for_active_set(
                self.inputs.structures,
                settings.copies_per_structure,
                self.config.trainer.ace_params.number_of_functions_per_element,
            )
            start = initial_structures(self.inputs.structures, settings, copies)
            labelled = self._label(0, start)
            if labelled is None:
                raise TrainerError(
                    "the oracle labelled none of the initial structures: nothing to train "
                    f"generation 0 on (the failures: {record_path(self.loop_dir, 0, LABEL)})"
                )
            data = labelled
        return self._train(0, data, None)

    # -- the steps ------------------------------------------------------------------------------

    def _step(self, iteration: int, step: str, kind: type[R], work: Callable[[Path], R]) -> R:
        """The record of ``step``: read if it was done before, else from running ``work`` in a
        fresh attempt (the record written last, so an interrupted step is redone)."""
        path = record_path(self.loop_dir, iteration, step)
        existing = read_record(path, kind)
        if existing is not None:
            log.info("iteration %d: %s done before (%s), skipped", iteration, step, path.name)
            return existing
        workdir = step_dir(self.loop_dir, iteration, step)
        workdir.mkdir(parents=True, exist_ok=True)
        log.info("iteration %d: %s ...", iteration, step)
        started = time.perf_counter()
        record = work(workdir)
        record.wall_s = time.perf_counter() - started
        write_record(path, record)
        log.info("iteration %d: %s done in %.1f s", iteration, step, record.wall_s)
        if step in (EXPLORE, TRAIN):  # the report shows what MD reached and each generation
            self.parts.report(self.loop_dir)
        return record

    def _progress(self, iteration: int, step: str) -> Callable[[str], None]:
        def show(line: str) -> None:
            log.info("iteration %d: %s: %s", iteration, step, line)

        return show

    def _explore(self, iteration: int, potential: Potential) -> ExploreRecord:
        def work(workdir: Path) -> ExploreRecord:
            outcome = self.parts.explore(
                potential,
                self.inputs.structures,
                self.config.explorer,
                workdir,
                self._progress(iteration, EXPLORE),
            )
            ase.io.write(workdir / CANDIDATES_FILE, outcome.candidates, format="extxyz")
            return explore_record(outcome.trajectories, len(outcome.candidates), self.config)

        record = self._step(iteration, EXPLORE, ExploreRecord, work)
        log.info(
            "iteration %d: explored: %d candidates, max gamma %s, %d of %d checked frames above "
            "gamma_lower, %s",
            iteration,
            record.n_candidates,
            "-" if record.max_gamma is None else f"{record.max_gamma:.2f}",
            record.n_frames_above_lower,
            record.n_checked_frames,
            "every trajectory ran its full length"
            if record.all_full_length
            else "some trajectories stopped early",
        )
        return record

    def _candidates(self, iteration: int) -> list[Atoms]:
        path = step_dir(self.loop_dir, iteration, EXPLORE) / CANDIDATES_FILE
        if not path.exists() or path.stat().st_size == 0:
            return []
        return list(ase.io.iread(path, index=":", format="extxyz"))

    def _select(self, iteration: int, potential: Potential) -> list[Atoms]:
        candidates = self._candidates(iteration)
        settings = self.config.loop
        cap = settings.max_selected_structures
        if settings.max_oracle_calls is not None:
            left = settings.max_oracle_calls - oracle_calls_made(self.loop_dir)
            cap = left if cap is None else min(cap, left)

        def work(workdir: Path) -> SelectRecord:
            outcome = self.parts.select(
                self.config.trainer,
                potential,
                candidates,
                cap,
                settings.max_selected_atoms,
                workdir,
            )
            chosen = [candidates[index] for index in outcome.indices]
            for index, atoms in zip(outcome.indices, chosen, strict=True):
                atoms.info["name"] = f"iter_{iteration:03d}/candidate_{index}"
            ase.io.write(workdir / SELECTED_FILE, chosen, format="extxyz")
            return SelectRecord(
                wall_s=0.0,
                n_candidates=len(candidates),
                n_selected=len(chosen),
                n_atoms=sum(len(atoms) for atoms in chosen),
                cap_structures=cap,
                cap_atoms=settings.max_selected_atoms,
                indices=list(outcome.indices),
                method=outcome.method,
            )

        record = self._step(iteration, SELECT, SelectRecord, work)
        log.info(
            "iteration %d: selected %d of %d candidates (%d atoms)",
            iteration,
            record.n_selected,
            record.n_candidates,
            record.n_atoms,
        )
        if not record.n_selected:
            return []
        path = step_dir(self.loop_dir, iteration, SELECT) / SELECTED_FILE
        return list(ase.io.iread(path, index=":", format="extxyz"))

    def _label(self, iteration: int, structures: Sequence[Atoms]) -> Dataset | None:
        def work(workdir: Path) -> LabelRecord:
            outcome = self.parts.label(
                structures,
                self.config.oracle,
                self.loop_dir / LABEL_CACHE_DIR,
                workdir / "jobs",
                self._progress(iteration, LABEL),
            )
            labelled = workdir / LABELLED_FILE
            labelled.unlink(missing_ok=True)  # a half-done earlier attempt's
            if outcome.dataset is not None:
                outcome.dataset.write(labelled)
            return LabelRecord(
                wall_s=0.0,
                n_structures=len(structures),
                n_labelled=0 if outcome.dataset is None else len(outcome.dataset),
                n_failed=len(outcome.failures),
                n_calls=outcome.n_calls,
                n_cached=outcome.n_cached,
                failures=outcome.failures,
            )

        record = self._step(iteration, LABEL, LabelRecord, work)
        log.info(
            "iteration %d: labelled %d of %d structures (%d oracle calls, %d from the cache, "
            "%d failed)",
            iteration,
            record.n_labelled,
            record.n_structures,
            record.n_calls,
            record.n_cached,
            record.n_failed,
        )
        if not record.n_labelled:
            return None
        return Dataset.read(step_dir(self.loop_dir, iteration, LABEL) / LABELLED_FILE)

    def _train(self, iteration: int, dataset: Dataset, previous: Potential | None) -> Potential:
        trainer_config = self.config.trainer
        budget = self.config.loop.generation_time_budget
        if budget is not None:
            fit = trainer_config.fit.model_copy(update={"time_budget": budget})
            trainer_config = trainer_config.model_copy(update={"fit": fit})

        def work(workdir: Path) -> TrainRecord:
            run_dir = workdir / "run"
            if (run_dir / "potential.json").exists():  # trained, but killed before the record
                potential = load_finished(run_dir)
                if potential.checks_passed is False and not trainer_config.accept_failed_checks:
                    raise FailedChecksError(
                        f"generation {iteration} ({run_dir}) failed its safety checks (dimers, "
                        "compression): the loop does not go on from it; set "
                        "trainer.accept_failed_checks to go on regardless",
                        failures=[],
                        workdir=run_dir,
                    )
            else:
                potential = self.parts.train(
                    trainer_config, dataset, run_dir, previous, self._progress(iteration, TRAIN)
                )
            return train_record(self, iteration, potential, len(dataset), run_dir)

        record = self._step(iteration, TRAIN, TrainRecord, work)
        potential = load_finished(self.loop_dir / record.run_dir)
        if potential.trainer != "mock" and potential.active_set_path is None:
            raise TrainerError(
                f"generation {iteration} ({potential.run_dir}) has no active set, so MD with it "
                "has no extrapolation grade (pace_activeset's reason is in its "
                "pace_activeset.log; usually fewer atoms of an element than basis functions): "
                "give more data (--data) or fewer trainer.ace_params."
                "number_of_functions_per_element"
            )
        return potential


def train_record(
    runner: LoopRunner, iteration: int, potential: Potential, n_new: int, run_dir: Path
) -> TrainRecord:
    """A generation's record: its errors on its own train/test split and on --test-data."""
    values: dict[str, Any] = {}
    for prefix, metrics in (("train", potential.train_metrics), ("test", potential.test_metrics)):
        if metrics is not None:
            values[f"{prefix}_energy_rmse_mev"] = metrics.energy_rmse_mev_per_atom
            values[f"{prefix}_force_rmse_mev"] = metrics.force_rmse_mev_per_angstrom
    if potential.cost is not None:
        values["startup_s"] = potential.cost.startup_s
    if runner.inputs.test_data is not None:
        metrics = runner.parts.evaluate(potential, runner.inputs.test_data)
        values["test_data_energy_rmse_mev"] = metrics.energy_rmse_mev_per_atom
        values["test_data_force_rmse_mev"] = metrics.force_rmse_mev_per_angstrom
    return TrainRecord(
        wall_s=0.0,
        run_dir=str(run_dir.relative_to(runner.loop_dir)),
        generation=iteration,
        n_new_structures=n_new,
        **values,
    )


def explore_record(
    trajectories: list[dict[str, Any]], n_candidates: int, config: LoopConfig
) -> ExploreRecord:
    """The exploration's totals, and whether it shows convergence."""
    checked = sum(int(t.get("n_checked_frames", 0)) for t in trajectories)
    above = sum(int(t.get("n_frames_above_lower", 0)) for t in trajectories)
    full = bool(trajectories) and all(
        int(t.get("steps_done", 0)) >= int(t.get("steps_planned", 1)) for t in trajectories
    )
    gammas = [float(t["max_gamma"]) for t in trajectories if t.get("max_gamma") is not None]
    fraction_ok = checked > 0 and above <= config.loop.converged_fraction * checked
    return ExploreRecord(
        wall_s=0.0,
        n_candidates=n_candidates,
        trajectories=trajectories,
        max_gamma=max(gammas) if gammas else None,
        n_checked_frames=checked,
        n_frames_above_lower=above,
        all_full_length=full,
        converged=full and fraction_ok,
    )
