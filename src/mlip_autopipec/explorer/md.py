"""Exploration: MD with the potential over structures and conditions, collecting the frames where
it extrapolates (candidates for the oracle).

``explore`` is a few steps: check the structures → the close-contact floors → one trajectory per
structure, condition and replica → run those not finished in an earlier call (worker processes)
→ read every summary and candidate back from ``workdir``. A rerun after an interruption skips
the finished trajectories (their ``summary.json`` matches) and reruns the others from the start.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read
from pydantic import ValidationError

from mlip_autopipec.config.explorer import ExplorerConfig
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.domain_models.structure_hash import structure_hash
from mlip_autopipec.errors import ConfigurationError, DatasetValidationError
from mlip_autopipec.explorer.contacts import (
    ContactFloors,
    Pair,
    contact_floors,
    shortest_pair_distances,
)
from mlip_autopipec.explorer.engine import Engine, deployed_grader
from mlip_autopipec.explorer.trajectory import (
    CANDIDATES,
    SUMMARY_JSON,
    TrajectorySummary,
    TrajectoryTask,
    run_trajectory,
)

#: ``progress(done, total, summary)`` after each trajectory (finished earlier ones included).
ExploreProgress = Callable[[int, int, TrajectorySummary], None]


@dataclass(frozen=True)
class Exploration:
    """The candidates of all trajectories (trajectory order, then step) and their summaries.

    Each candidate's ``info`` holds ``max_gamma``, ``condition``, ``trajectory``, ``step``,
    ``structure_index``, ``temperature_K`` (``pressure_GPa``) and, for a trajectory's
    stopping frame, ``stop_reason``. Candidates are read back from their extxyz files, so an
    exploration resumed from its files gives the same structures to the last bit.
    """

    candidates: list[Atoms]
    trajectories: list[TrajectorySummary]

    @property
    def fraction_above_lower(self) -> float:
        """Of all graded frames, the fraction with max gamma above gamma_lower."""
        checked = sum(t.n_checked_frames for t in self.trajectories)
        above = sum(t.n_frames_above_lower for t in self.trajectories)
        return above / checked if checked else 0.0

    @property
    def all_completed(self) -> bool:
        """Every trajectory ran its full length."""
        return all(t.stop_reason == "completed" for t in self.trajectories)


def explore(
    potential: Potential,
    structures: Sequence[Atoms],
    config: ExplorerConfig,
    workdir: Path,
    progress: ExploreProgress | None = None,
    *,
    reference_distances: Mapping[Pair, float] | None = None,
    engine: Engine | None = None,
) -> Exploration:
    """Run the trajectories of ``config`` from ``structures`` with ``potential`` in ``workdir``.

    ``reference_distances`` (Å, shortest distance per sorted element pair, e.g.
    ``shortest_distances`` of the training data) set the close-contact floors; without them
    the starting structures do. ``engine`` replaces the potential's forces and grade (tests).
    """
    workdir = Path(workdir).absolute()
    engine = engine or Engine()
    # 1. a potential that can be graded; structures it can run (its elements; NPT: periodic)
    if engine.grader is deployed_grader:
        _check_potential(potential)
    _check_structures(potential, structures, config)
    # 2. the floors of the close-contact stop
    elements = sorted({s for atoms in structures for s in atoms.get_chemical_symbols()})
    if reference_distances is None:
        reference_distances = shortest_pair_distances(structures)
        reference_name = "the starting structures"
    else:
        reference_name = "the training data"
    floors = contact_floors(elements, config, reference_distances, reference_name)
    # 3. the trajectories; those finished by an earlier call are read back
    tasks = plan(potential, structures, config, floors)
    summaries: dict[str, TrajectorySummary] = {}
    done = 0
    for task in tasks:
        summary = finished_summary(workdir / task.id, task)
        if summary is not None:
            summaries[task.id] = summary
            done += 1
            if progress is not None:
                progress(done, len(tasks), summary)
    # 4. run the others
    todo = [task for task in tasks if task.id not in summaries]

    def finished(summary: TrajectorySummary) -> None:
        nonlocal done
        summaries[summary.id] = summary
        done += 1
        if progress is not None:
            progress(done, len(tasks), summary)

    arguments = (potential, structures, config, floors, engine, workdir)
    if config.workers == 1 or len(todo) <= 1:
        for task in todo:
            finished(_run(task, *arguments))
    elif todo:
        _run_in_processes(todo, arguments, min(config.workers, len(todo)), finished)
    # 5. everything, from the files
    candidates: list[Atoms] = []
    for task in tasks:
        if summaries[task.id].n_candidates:
            candidates += read(workdir / task.id / CANDIDATES, index=":", format="extxyz")
    return Exploration(candidates, [summaries[task.id] for task in tasks])


def plan(
    potential: Potential,
    structures: Sequence[Atoms],
    config: ExplorerConfig,
    floors: ContactFloors,
) -> list[TrajectoryTask]:
    """One task per structure, condition and replica, each with its own seed and key."""
    settings = config.model_dump(mode="json", exclude={"workers"})
    potential_digest = hashlib.sha256(potential.yace_path.read_bytes()).hexdigest()
    floors_text = sorted((f"{a}-{b}", value) for (a, b), value in floors.floors.items())
    tasks = []
    for index, atoms in enumerate(structures):
        digest = structure_hash(atoms)
        for number, (temperature, pressure) in enumerate(config.conditions()):
            for replica in range(config.trajectories_per_condition):
                name = f"s{index:03d}_T{temperature:g}K"
                if pressure is not None:
                    name += f"_P{pressure:g}GPa"
                name += f"_r{replica}"
                seed_sequence = np.random.SeedSequence([config.seed, index, number, replica])
                seed = int(seed_sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))
                identity = [settings, digest, potential_digest, floors_text, name, seed]
                key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
                tasks.append(
                    TrajectoryTask(
                        id=name,
                        structure_index=index,
                        temperature_K=temperature,
                        pressure_GPa=pressure,
                        replica=replica,
                        seed=seed,
                        key=key,
                    )
                )
    return tasks


def finished_summary(directory: Path, task: TrajectoryTask) -> TrajectorySummary | None:
    """The summary of a trajectory finished earlier with the same key; None: run it."""
    path = directory / SUMMARY_JSON
    if not path.exists():
        return None
    try:
        summary = TrajectorySummary.model_validate_json(path.read_text())
    except ValidationError:
        return None
    if summary.key != task.key:
        return None
    if summary.n_candidates and not (directory / CANDIDATES).exists():
        return None
    return summary


def _check_potential(potential: Potential) -> None:
    """The explorer grades frames with the potential's active set: a real potential with one."""
    if potential.trainer == "mock":
        raise ValueError(
            f"the potential in {potential.run_dir} is a mock placeholder: it cannot run MD"
        )
    for label, path in (
        ("active set", potential.active_set_path),
        ("B-basis", potential.yaml_path),
    ):
        if path is None or not path.exists():
            raise ValueError(
                f"the potential in {potential.run_dir} has no {label} file ({path}): the "
                "explorer needs its extrapolation grade (train with the active set built)"
            )


def _check_structures(
    potential: Potential, structures: Sequence[Atoms], config: ExplorerConfig
) -> None:
    if not structures:
        raise DatasetValidationError("no starting structures to explore from")
    known = set(potential.elements)
    for index, atoms in enumerate(structures):
        name = str(atoms.info.get("name", "")) or None
        unknown = sorted(set(atoms.get_chemical_symbols()) - known)
        if unknown:
            raise DatasetValidationError(
                f"holds {unknown}, which the potential (elements {list(potential.elements)}) "
                "does not know",
                index=index,
                name=name,
            )
        if config.pressures_GPa is not None and not atoms.pbc.all():
            what = f"structure {index}" + (f" '{name}'" if name else "")
            raise ConfigurationError(
                [
                    (
                        "explorer.pressures_GPa",
                        f"{what} is not periodic in all three directions (pbc "
                        f"{atoms.pbc.tolist()}): NPT needs a periodic cell; explore it "
                        "without pressures (NVT)",
                    )
                ]
            )


def _run(
    task: TrajectoryTask,
    potential: Potential,
    structures: Sequence[Atoms],
    config: ExplorerConfig,
    floors: ContactFloors,
    engine: Engine,
    workdir: Path,
) -> TrajectorySummary:
    structure = structures[task.structure_index]
    return run_trajectory(task, potential, structure, config, floors, engine, workdir / task.id)


def _run_in_processes(
    todo: list[TrajectoryTask],
    arguments: tuple[Potential, Sequence[Atoms], ExplorerConfig, ContactFloors, Engine, Path],
    workers: int,
    finished: Callable[[TrajectorySummary], None],
) -> None:
    """Run the trajectories in spawned processes; a process that dies fails its trajectory
    (not written to disk: a rerun tries it again); an exception is raised once all ended."""
    potential, structures, config, floors, engine, workdir = arguments
    bare = [
        Atoms(numbers=a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc) for a in structures
    ]
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(threads,),
    ) as executor:
        futures: dict[Future[TrajectorySummary], TrajectoryTask] = {
            executor.submit(_run, task, potential, bare, config, floors, engine, workdir): task
            for task in todo
        }
        pending = set(futures)
        raised: BaseException | None = None
        while pending:
            completed, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in completed:
                task = futures[future]
                error = future.exception()
                if error is None:
                    finished(future.result())
                elif isinstance(error, BrokenProcessPool):
                    message = "its process died (a crash in the potential's code, or killed)"
                    finished(_error_summary(task, config, message))
                else:  # raised as it would be in this process, once the others have ended
                    raised = raised or error
        if raised is not None:
            raise raised


def _init_worker(threads: str) -> None:
    """Share the cores between the workers unless the user set the thread counts."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, threads)


def _error_summary(task: TrajectoryTask, config: ExplorerConfig, message: str) -> TrajectorySummary:
    return TrajectorySummary(
        id=task.id,
        key=task.key,
        structure_index=task.structure_index,
        temperature_K=task.temperature_K,
        pressure_GPa=task.pressure_GPa,
        replica=task.replica,
        steps_done=0,
        steps_planned=config.steps,
        max_gamma=0.0,
        n_checked_frames=0,
        n_frames_above_lower=0,
        n_candidates=0,
        stop_reason="error",
        message=message,
        wall_s=0.0,
    )
