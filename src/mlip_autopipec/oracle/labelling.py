"""Labelling structures with the oracle: cached, in parallel worker processes, failures recorded.

``label_structures`` is a few steps: check and hash each structure → look its labels up in the
cache → compute the missing ones (worker processes here, or a batch runner given by the caller)
→ read everything back from the cache into a Dataset, with every failure and its reason. A
failure rate above ``max_failure_fraction`` raises OracleError (already computed labels stay
cached).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.config.oracle import OracleConfig
from mlip_autopipec.domain_models.dataset import Dataset, LabelledStructure
from mlip_autopipec.domain_models.structure_hash import structure_hash
from mlip_autopipec.domain_models.validation import validate_structure
from mlip_autopipec.errors import DatasetValidationError, OracleError
from mlip_autopipec.oracle.cache import CacheEntry, LabelCache, StructurePayload
from mlip_autopipec.oracle.calculation import label_one

log = logging.getLogger(__name__)

#: ``progress(done, total)``: structures settled (labelled, cached or failed) of all.
Progress = Callable[[int, int], None]
#: ``on_done(payload, entry, reason)`` → whether to go on; ``entry`` None: no entry (``reason``).
OnDone = Callable[[StructurePayload, CacheEntry | None, str | None], bool]


class Runner(Protocol):
    """Computes the labels of ``payloads`` into ``cache``, calling ``on_done`` for each; stops
    starting new calculations once ``on_done`` returns False."""

    def __call__(
        self,
        payloads: Sequence[StructurePayload],
        config: OracleConfig,
        cache: LabelCache,
        on_done: OnDone,
    ) -> None: ...


@dataclass(frozen=True)
class LabelFailure:
    """A structure the oracle could not label: its position in the input, hash and why."""

    index: int
    hash: str
    reason: str
    cached: bool = field(default=False, metadata={"doc": "failed in an earlier labelling"})


@dataclass(frozen=True)
class LabelResult:
    """The labelled structures (input order, failures left out) and what labelling cost.

    ``n_calls`` counts the oracle calculations made now (failed ones too); ``n_cached`` the
    structures whose labels (or failure) came from the cache. ``indices[k]`` is the input
    position of ``dataset[k]``.
    """

    dataset: Dataset
    failures: list[LabelFailure]
    n_calls: int
    n_cached: int
    indices: list[int]


def label_structures(
    structures: Sequence[Atoms],
    config: OracleConfig,
    cache_dir: Path,
    progress: Progress | None = None,
    *,
    retry_failures: bool = False,
    runner: Runner | None = None,
) -> LabelResult:
    """Energies (eV) and forces (eV/Å) of ``structures`` from the oracle of ``config``.

    Labels come from the cache in ``cache_dir`` when known (a failure too, unless
    ``retry_failures``); the others are computed by ``runner`` (default: worker processes on
    this machine; ``infrastructure.oracle_jobs`` gives the batch one) and cached as they come.
    """
    execution = config.execution
    if runner is None and execution is not None and execution.type != "local":
        raise ValueError(
            f"oracle.execution is {execution.type}: label through "
            "mlip_autopipec.infrastructure.oracle_jobs.label, which submits the batch jobs"
        )
    total = len(structures)
    if total == 0:
        raise OracleError("no structures to label", cache_dir=cache_dir)
    cache = LabelCache(cache_dir, config.identity())
    # 1. hash each structure; one that no label can make usable is a failure right away
    hashes = [structure_hash(atoms) for atoms in structures]
    failures: dict[int, LabelFailure] = {}
    for index, atoms in enumerate(structures):
        problem = _geometry_problem(atoms, index)
        if problem is not None:
            failures[index] = LabelFailure(index, hashes[index], f"not labelled: {problem}")
    wanted: dict[str, list[int]] = {}
    for index, digest in enumerate(hashes):
        if index not in failures:
            wanted.setdefault(digest, []).append(index)
    # 2. the cache
    entries: dict[str, CacheEntry] = {}
    cached: set[str] = set()
    for digest in wanted:
        entry = cache.get(digest)
        if entry is not None and not (retry_failures and entry.status == "failed"):
            entries[digest] = entry
            cached.add(digest)
    limit = config.max_failure_fraction * total
    n_failed = len(failures) + sum(
        len(wanted[d]) for d, entry in entries.items() if entry.status == "failed"
    )
    settled = len(failures) + sum(len(wanted[d]) for d in entries)
    if progress is not None:
        progress(settled, total)
    # 3. compute the missing ones
    missing = [digest for digest in wanted if digest not in entries]
    lost: dict[str, str] = {}
    n_calls = 0

    def on_done(payload: StructurePayload, entry: CacheEntry | None, reason: str | None) -> bool:
        nonlocal n_failed, settled, n_calls
        count = len(wanted[payload.hash])
        settled += count
        if entry is None:
            lost[payload.hash] = reason or "no result"
        else:
            n_calls += 1
            entries[payload.hash] = entry
        if entry is None or entry.status == "failed":
            n_failed += count
        if progress is not None:
            progress(settled, total)
        return n_failed <= limit

    if missing and n_failed <= limit:
        payloads = [StructurePayload.of(structures[wanted[d][0]], d) for d in missing]
        (runner or run_in_worker_processes)(payloads, config, cache, on_done)
    # 4. the result, in input order
    labelled: list[Atoms] = []
    indices: list[int] = []
    for index, atoms in enumerate(structures):
        digest = hashes[index]
        if index in failures:
            continue
        entry = entries.get(digest)
        if entry is None:
            if digest in lost:
                failures[index] = LabelFailure(index, digest, lost[digest])
            continue  # not reached: labelling stopped at the failure limit
        if entry.status == "failed":
            assert entry.reason is not None
            failures[index] = LabelFailure(index, digest, entry.reason, cached=digest in cached)
            continue
        labelled.append(_with_labels(atoms, entry, index))
        indices.append(index)
    failure_list = [failures[index] for index in sorted(failures)]
    if len(failure_list) > limit or not labelled:
        n_missing = total - len(labelled) - len(failure_list)
        stopped = f"; labelling stopped, {n_missing} structures not computed" if n_missing else ""
        raise OracleError(
            f"the oracle ({config.calculator}) failed on {len(failure_list)} of {total} "
            f"structures, more than oracle.max_failure_fraction = {config.max_failure_fraction:g}"
            f"{stopped}",
            failures=[(f.index, f.reason) for f in failure_list],
            cache_dir=cache.root,
        )
    for failure in failure_list:
        log.warning("structure %d not labelled: %s", failure.index, failure.reason)
    n_cached = sum(len(wanted[d]) for d in cached)
    return LabelResult(
        dataset=Dataset.from_atoms(labelled, source=f"oracle {config.calculator}"),
        failures=failure_list,
        n_calls=n_calls,
        n_cached=n_cached,
        indices=indices,
    )


def _geometry_problem(atoms: Atoms, index: int) -> str | None:
    """Why no label can make the structure trainable (no atoms, broken cell, atoms on top of
    each other), checked with placeholder labels before the oracle is paid; or None."""
    if len(atoms) == 0:
        return "has no atoms"
    placeholder = LabelledStructure(
        atoms=atoms, energy=0.0, forces=np.zeros((len(atoms), 3)), name=f"structure {index}"
    )
    try:
        validate_structure(placeholder, index=index)
    except DatasetValidationError as error:
        return error.reason
    return None


def _with_labels(atoms: Atoms, entry: CacheEntry, index: int) -> Atoms:
    labelled = Atoms(
        numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
    )
    labelled.info.update(atoms.info)
    labelled.info.setdefault("name", f"oracle/{entry.hash[:12]}")
    labelled.info["structure_hash"] = entry.hash
    assert entry.energy is not None and entry.forces is not None
    labelled.calc = SinglePointCalculator(
        labelled, energy=entry.energy, forces=np.array(entry.forces)
    )
    return labelled


# -- the default runner: worker processes on this machine -------------------------------------


def run_in_worker_processes(
    payloads: Sequence[StructurePayload],
    config: OracleConfig,
    cache: LabelCache,
    on_done: OnDone,
) -> None:
    """Label ``payloads`` in ``config.workers`` spawned processes, one structure per task.

    Spawned, not forked: tblite's OpenMP and TensorFlow do not survive a fork. A worker that
    dies (a crash inside the calculator's compiled code) fails the structures in flight
    without caching that (a later labelling tries them again); the others go on in new
    processes.
    """
    workers = min(config.workers, len(payloads))
    pending = deque(payloads)
    running: dict[Future[str], StructurePayload] = {}
    config_data = config.model_dump(mode="json")
    go_on = True
    executor = _executor(workers)
    try:
        while running or (pending and go_on):
            while pending and go_on and len(running) < workers:
                payload = pending.popleft()
                future = executor.submit(
                    _work, config_data, payload.model_dump_json(), str(cache.root)
                )
                running[future] = payload
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                payload = running.pop(future)
                entry, reason = _outcome(future)
                broken = broken or isinstance(future.exception(), BrokenProcessPool)
                go_on = on_done(payload, entry, reason) and go_on
            if broken:
                for future, payload in running.items():
                    entry, reason = _outcome(future)
                    go_on = on_done(payload, entry, reason) and go_on
                running.clear()
                executor.shutdown(wait=True, cancel_futures=True)
                executor = _executor(workers)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _executor(workers: int) -> ProcessPoolExecutor:
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(threads,),
    )


def _init_worker(threads: str) -> None:
    """Share the cores between the workers unless the user set the thread counts."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, threads)


def _work(config_data: dict[str, Any], payload_json: str, cache_root: str) -> str:
    """A worker's task: label one structure into the cache; the entry as JSON."""
    config = OracleConfig.model_validate(config_data)
    payload = StructurePayload.model_validate_json(payload_json)
    root = Path(cache_root)
    cache = LabelCache(root.parent, root.name)
    return label_one(config, payload, cache).model_dump_json()


def _outcome(future: Future[str]) -> tuple[CacheEntry | None, str | None]:
    error = future.exception()
    if error is None:
        return CacheEntry.model_validate_json(future.result()), None
    if isinstance(error, BrokenProcessPool):
        return None, (
            "the worker process labelling it died (a crash in the calculator, or killed); "
            "not cached: a later labelling tries it again"
        )
    return None, f"the worker process failed: {type(error).__name__}: {error}"
