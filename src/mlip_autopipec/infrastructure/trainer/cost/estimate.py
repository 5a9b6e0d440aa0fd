"""What a fit will cost before it starts: measured from the data and the basis, and a budget.

A pacemaker iteration evaluates energies, forces and the gradient of the loss for every
training atom over its neighbours within the cutoff, with every basis function. Measured on
2 cores (``benchmarks/cost_estimate.py --from-runs``), its time grows as

    s per iteration = K * (training atoms) * (mean neighbours) * sqrt(functions in the basis)

on one element and five alike. Before each fit, the neighbours are counted on a sample of the
data and the functions come from pacemaker's own basis construction (pyace), so the estimate
follows the data and the basis. The start-up is mostly TensorFlow tracing the fit's graph,
which grows with the functions and, much more, with the species blocks (n * 2**(n-1) for n
elements): a linear fit to the measured start-ups. The machine enters through the threads and
its contention: the constants were measured on 2 cores shared with other work, about twice as
many runnable threads as cores (CALIBRATION_CONTENTION); everything is scaled by the contention
now, (load average + threads) / cores, at least 1. A time budget does not rely on the estimate
alone: the deadline ends the fit (fit_deadline.py).

That model is the fallback. When the basis was measured (``cost/probe.py``: pacemaker itself
fitted a sample of the data for a few iterations, on this machine now), an evaluation of the
training set is the probe's time per atom times its atoms, an iteration EVALS_PER_ITERATION
evaluations plus the probe's step (the optimiser, saving the interim potential), and the
start-up the probe's own plus the larger first evaluations.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlip_autopipec.config.durations import format_duration
from mlip_autopipec.domain_models.dataset import Dataset

if TYPE_CHECKING:
    from ase import Atoms

    from mlip_autopipec.infrastructure.trainer.cost.probe import ProbeTiming

#: Atoms of the sample the neighbours are counted on (whole structures, drawn at random).
SAMPLE_ATOMS = 400
#: µs per atom, neighbour and sqrt(function) of a fit iteration with CALIBRATION_THREADS
#: threads (benchmarks/cost_estimate.py --from-runs: 0.66 to 1.19 over 6 runs).
US_PER_ATOM_NEIGHBOUR = 0.9
CALIBRATION_THREADS = 2
#: (load average + fit threads) / cores while the constants were measured.
CALIBRATION_CONTENTION = 2.0
#: s of pacemaker's start-up before the fit: Python, TensorFlow, neighbour lists.
STARTUP_FIXED_S = 15.0
#: s of TensorFlow's graph tracing of the fit: fixed, per function and per species block.
TRACING_FIXED_S = 10.0
TRACING_PER_FUNCTION_S = 0.1
TRACING_PER_BLOCK_S = 1.3
#: Share of the tracing spent again on a test set (its evaluation is traced separately).
TEST_TRACING_SHARE = 0.5
#: s after the last iteration besides evaluations: .yace, active set, dimers, report.
FINISH_FIXED_S = 15.0
#: Evaluations of all the data after the last iteration (test metrics, predictions, active set)
#: in iterations' worth.
FINISH_ITERATIONS = 3.0
#: Fewest iterations a time budget may leave a fit; below, the basis is made smaller.
MIN_BUDGET_ITERATIONS = 200
#: Loss evaluations per iteration of pacemaker's BFGS: one, plus line searches (1.03 to 1.06
#: over hundreds of iterations, up to 1.37 over the first 30, in pacemaker's logs here).
EVALS_PER_ITERATION = 1.1


@dataclass(frozen=True)
class CostEstimate:
    """What a fit will cost on this machine, in seconds of wall time."""

    mean_neighbours: float  # within the cutoff, counted on the sample
    sample_atoms: int
    fitted_atoms: int  # atoms of the training part (after the test split)
    total_functions: int  # what pacemaker builds: the functions of every species block
    contention: float  # runnable threads per core with the fit's, at least 1
    seconds_per_iteration: float
    startup_s: float
    finish_s: float
    method: str = "model"  # "measured": pacemaker fitted a sample of the data (cost/probe.py)
    note: str = ""  # what was measured, or why the model was used
    probe_s: float = 0.0  # s the measurement took

    def total_s(self, iterations: int) -> float:
        """Wall time of a fit of ``iterations`` iterations, start-up and finishing included."""
        return self.startup_s + iterations * self.seconds_per_iteration + self.finish_s

    def iterations_within(self, budget_s: float) -> int:
        """Iterations that fit into ``budget_s`` besides start-up and finishing (may be 0)."""
        room = budget_s - self.startup_s - self.finish_s
        return max(0, math.floor(room / self.seconds_per_iteration))

    def describe(self, iterations: int) -> str:
        """'about 0.42 s per iteration, 300 iterations: about 2m36s (start-up ~40s, ...)'."""
        return (
            f"about {_per_iteration(self.seconds_per_iteration)} per iteration, {iterations} "
            f"iterations: about {format_duration(self.total_s(iterations))} (start-up "
            f"~{format_duration(self.startup_s)}, finishing ~{format_duration(self.finish_s)}; "
            f"{self.total_functions} functions, {self.fitted_atoms} atoms fitted, "
            f"{self.mean_neighbours:.0f} neighbours per atom, {self.contention:.1f} threads "
            f"per core; {self.method}{': ' + self.note if self.note else ''})"
        )


def estimate_cost(
    potential_section: dict[str, Any],
    dataset: Dataset,
    *,
    test_size: float,
    threads: int,
    seed: int = 0,
    probe: ProbeTiming | None = None,
    note: str = "",
    cores: int | None = None,
) -> CostEstimate:
    """The cost of fitting pacemaker's basis (``potential`` section of input.yaml) to
    ``dataset`` with ``threads`` threads; the neighbours are counted on a random sample of
    whole structures holding at least ``SAMPLE_ATOMS`` atoms (``sample_structures``).

    With ``probe`` (pacemaker's short fit of a sample) the iterations and the start-up are
    measured; without, modelled. ``note`` says why the model was used. ``cores``: the fit
    runs alone on that many cores (a batch job's allocation), not beside this machine's load."""
    from pyace.multispecies_basisextension import create_multispecies_basis_config

    total_functions = int(
        create_multispecies_basis_config(potential_section).total_number_of_functions
    )
    cutoff = max(float(bond["rcut"]) for bond in potential_section["bonds"].values())
    sample = sample_structures(dataset, seed)
    sample_atoms = sum(len(atoms) for atoms in sample)
    neighbours = _neighbour_count(sample, cutoff) / sample_atoms
    fitted_atoms = max(1, round(dataset.n_atoms * (1.0 - test_size)))
    n_elements = len(potential_section["elements"])
    crowding = contention(threads, cores)
    slowdown = crowding / CALIBRATION_CONTENTION
    method = "model"
    if probe is None:
        startup = slowdown * (STARTUP_FIXED_S + _tracing_s(total_functions, n_elements, test_size))
        per_iteration = slowdown * (
            US_PER_ATOM_NEIGHBOUR
            * 1e-6
            * fitted_atoms
            * neighbours
            * math.sqrt(total_functions)
            * CALIBRATION_THREADS
            / max(1, threads)
        )
    else:
        # Measured now, on this machine: no contention scaling. A basis other than the one
        # measured (made smaller for a budget) scales as the model does: an evaluation with
        # the square root of the functions, the step with the functions, the start-up as the
        # model's tracing.
        ratio = total_functions / probe.total_functions
        per_atom = probe.evaluation_s_per_atom * math.sqrt(ratio)
        per_iteration = EVALS_PER_ITERATION * per_atom * fitted_atoms + probe.step_s * ratio
        tracing_ratio = _tracing_s(total_functions, n_elements, test_size) / _tracing_s(
            probe.total_functions, n_elements, test_size
        )
        # The first evaluations (training and test set) are of all the data, not the sample.
        first_evaluations = per_atom * max(0, dataset.n_atoms - probe.sample_atoms)
        startup = probe.startup_s * tracing_ratio + first_evaluations
        method = "measured"
        note = (
            f"pacemaker fitted {probe.sample_atoms} atoms of the data for a few iterations, "
            f"{probe.total_functions} functions, in {probe.wall_s:.0f} s"
        )
        if probe.total_functions != total_functions:
            note += f"; scaled to {total_functions} functions"
    return CostEstimate(
        mean_neighbours=neighbours,
        sample_atoms=sample_atoms if probe is None else probe.sample_atoms,
        fitted_atoms=fitted_atoms,
        total_functions=total_functions,
        seconds_per_iteration=per_iteration,
        contention=crowding,
        startup_s=startup,
        finish_s=FINISH_FIXED_S * slowdown
        + FINISH_ITERATIONS * per_iteration * dataset.n_atoms / fitted_atoms,
        method=method,
        note=note,
        probe_s=0.0 if probe is None else probe.wall_s,
    )


def _tracing_s(total_functions: int, n_elements: int, test_size: float) -> float:
    """The model's tracing of the fit's graph (s at the calibration's contention)."""
    blocks = n_elements * 2 ** (n_elements - 1)
    tracing = (
        TRACING_FIXED_S + TRACING_PER_FUNCTION_S * total_functions + TRACING_PER_BLOCK_S * blocks
    )
    return float(tracing * (1 + (TEST_TRACING_SHARE if test_size > 0 else 0.0)))


def contention(threads: int, cores: int | None = None) -> float:
    """Runnable threads per core once the fit runs, at least 1. On this machine: (load average
    of the last minute + the fit's threads) / its cores (the fit's threads alone when the
    system does not tell its load). On ``cores`` cores of its own (a batch job's allocation):
    threads / cores."""
    if cores is not None:
        return max(1.0, threads / max(1, cores))
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1.0, (load + threads) / cores)


def _neighbour_count(structures: list[Any], cutoff: float) -> int:
    from mlip_autopipec.domain_models.neighbours import neighbour_pairs

    return sum(len(neighbour_pairs(atoms, cutoff)[0]) for atoms in structures)


def sample_indices(dataset: Dataset, seed: int, atoms: int = SAMPLE_ATOMS) -> list[int]:
    """Whole structures of ``dataset`` drawn at random until they hold ``atoms`` atoms (all of
    them for a smaller dataset): their indices."""
    chosen = []
    atoms_so_far = 0
    for index in np.random.default_rng(seed).permutation(len(dataset)):
        chosen.append(int(index))
        atoms_so_far += len(dataset[int(index)].atoms)
        if atoms_so_far >= atoms:
            break
    return chosen


def sample_structures(dataset: Dataset, seed: int, atoms: int = SAMPLE_ATOMS) -> list[Atoms]:
    """The structures of ``sample_indices`` with their labels (SinglePointCalculator)."""
    return [dataset[index].to_atoms() for index in sample_indices(dataset, seed, atoms)]


def _per_iteration(seconds: float) -> str:
    """Seconds per iteration, to two figures below 10 s (a rate, not a duration)."""
    return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
