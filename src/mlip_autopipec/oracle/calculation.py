"""One oracle calculation: a fresh calculator, its result checked, the entry written to the cache.

Runs in a worker process (``labelling``) or in a batch job (``python -m mlip_autopipec.oracle``);
the entry is written there, as soon as it is known, so that nothing computed is lost when the
process that asked for it dies.
"""

from __future__ import annotations

import shutil
import signal
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mlip_autopipec.config.oracle import OracleConfig
from mlip_autopipec.oracle.cache import CacheEntry, LabelCache, StructurePayload


class CalculationTimeout(Exception):
    """The calculation took longer than ``timeout_s``."""


def label_one(config: OracleConfig, payload: StructurePayload, cache: LabelCache) -> CacheEntry:
    """Label one structure with the oracle and cache the result (labels or the failure)."""
    scratch = cache.scratch(payload.hash)
    start = time.monotonic()
    try:
        with _time_limit(config.timeout_s):
            energy, forces = _calculate(config, payload, scratch)
        reason = _problem(energy, forces, len(payload.numbers))
    except CalculationTimeout:
        energy, forces = None, None
        reason = f"timed out after {config.timeout_s:g} s (oracle.timeout_s)"
    except Exception as error:  # a user's calculator may raise anything
        energy, forces = None, None
        reason = f"{type(error).__name__}: {error}".strip()
        last = traceback.extract_tb(error.__traceback__)[-1:]
        if last:
            reason += f" (at {Path(last[0].filename).name}:{last[0].lineno})"
    seconds = time.monotonic() - start
    kept = _tidy(scratch, keep=config.keep_files or reason is not None)
    if reason is not None:
        if kept:
            reason += f"; its files: {scratch}"
        entry = CacheEntry(
            hash=payload.hash,
            status="failed",
            n_atoms=len(payload.numbers),
            reason=reason,
            seconds=seconds,
        )
    else:
        assert energy is not None and forces is not None
        entry = CacheEntry(
            hash=payload.hash,
            status="ok",
            n_atoms=len(payload.numbers),
            energy=energy,
            forces=forces.tolist(),
            seconds=seconds,
        )
    cache.put(entry)
    return entry


def _calculate(
    config: OracleConfig, payload: StructurePayload, scratch: Path
) -> tuple[float, np.ndarray]:
    atoms = payload.atoms()
    calculator = config.make_calculator()
    if "directory" not in config.parameters and hasattr(calculator, "directory"):
        scratch.mkdir(parents=True, exist_ok=True)
        calculator.directory = str(scratch)
    atoms.calc = calculator
    energy = float(np.asarray(atoms.get_potential_energy()).item())
    forces = np.array(atoms.get_forces(), dtype=float)
    return energy, forces


def _problem(energy: float, forces: Any, n_atoms: int) -> str | None:
    """Why the result cannot be a label (non-finite, wrong shape), or None."""
    if not np.isfinite(energy):
        return f"the energy is not finite ({energy})"
    if forces.shape != (n_atoms, 3):
        return f"the forces have shape {forces.shape}, expected ({n_atoms}, 3)"
    if not np.isfinite(forces).all():
        atoms = np.unique(np.nonzero(~np.isfinite(forces))[0])[:10].tolist()
        return f"the forces are not finite (atoms {atoms})"
    return None


def _tidy(scratch: Path, *, keep: bool) -> bool:
    """Remove the structure's scratch folder (ours) unless asked to keep it; True if kept."""
    if not scratch.exists():
        return False
    if keep and any(scratch.iterdir()):
        return True
    shutil.rmtree(scratch, ignore_errors=True)
    return False


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise CalculationTimeout in this (main) thread after ``seconds`` of wall time."""
    if seconds is None:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise CalculationTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
