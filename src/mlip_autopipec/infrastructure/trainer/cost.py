"""What a fit will cost before it starts: the basis timed on a sample of the data, and a budget.

The ACE basis of the fit is built in this process (pyace) and evaluated on a sample of the
training structures: that measures what depends on the data and the basis (atoms, neighbours
within the cutoff, functions, species blocks) on this machine. pacemaker's TensorFlow fit does
more per iteration than one evaluation (gradients of the loss, line searches) and has a start-up
(TensorFlow, graph tracing); the factors between the two were calibrated on 2 cores with
``benchmarks/cost_estimate.py`` and are constants below. The start-up is scaled by the load of
the machine (a shared machine traces slower); the time per iteration is measured under it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlip_autopipec.domain_models.dataset import Dataset

#: Atoms of the sample the basis is timed on (whole structures, drawn at random).
SAMPLE_ATOMS = 400
#: s of a fit iteration per (s of one evaluation of the training atoms by pyace's calculator):
#: calibrated with benchmarks/cost_estimate.py.
ITERATION_PER_EVALUATION = 3.0
#: s of pacemaker's start-up before the fit (Python, TensorFlow, neighbour lists) on an idle
#: machine.
STARTUP_FIXED_S = 10.0
#: s of TensorFlow's graph tracing before the first evaluation, once for the training set and
#: once more for a test set, on an idle machine (10 to 20 s measured for 8 to 600 functions).
TRACING_S = 15.0
#: s after the last iteration: pacemaker's predictions, .yace, active set, dimers, report.
FINISH_FIXED_S = 15.0
#: Evaluations of all the data after the last iteration (predictions, active set).
FINISH_EVALUATIONS = 3.0
#: Fewest iterations a time budget may leave a fit; below, the basis is made smaller.
MIN_BUDGET_ITERATIONS = 200


@dataclass(frozen=True)
class CostEstimate:
    """What a fit will cost on this machine, in seconds of wall time."""

    evaluator_us_per_atom: float  # measured: pyace's calculator on the sample, µs per atom
    sample_atoms: int
    fitted_atoms: int  # atoms of the training part (after the test split)
    total_functions: int
    seconds_per_iteration: float
    startup_s: float
    finish_s: float

    def total_s(self, iterations: int) -> float:
        """Wall time of a fit of ``iterations`` iterations, start-up and finishing included."""
        return self.startup_s + iterations * self.seconds_per_iteration + self.finish_s

    def iterations_within(self, budget_s: float) -> int:
        """Iterations that fit into ``budget_s`` besides start-up and finishing (may be 0)."""
        room = budget_s - self.startup_s - self.finish_s
        return max(0, math.floor(room / self.seconds_per_iteration))

    def describe(self, iterations: int) -> str:
        """'about 0.42 s per iteration, 300 iterations: about 2m36s (start-up ~20s ...)'."""
        from mlip_autopipec.infrastructure.trainer.progress import format_duration

        return (
            f"about {_seconds(self.seconds_per_iteration)} per iteration, {iterations} "
            f"iterations: about {format_duration(self.total_s(iterations))} (start-up "
            f"~{format_duration(self.startup_s)}, finishing ~{format_duration(self.finish_s)}; "
            f"{self.total_functions} functions, {self.fitted_atoms} atoms fitted)"
        )


def estimate_cost(
    potential_section: dict[str, Any],
    dataset: Dataset,
    *,
    test_size: float,
    seed: int = 0,
) -> CostEstimate:
    """Time pacemaker's basis (``potential`` section of input.yaml) on a sample of ``dataset``.

    The sample is whole structures drawn at random until it holds ``SAMPLE_ATOMS`` atoms; its
    evaluation time per atom, scaled to the atoms of the training part, gives the seconds per
    iteration.
    """
    from pyace import ACEBBasisSet, PyACECalculator
    from pyace.multispecies_basisextension import create_multispecies_basis_config

    basis = create_multispecies_basis_config(potential_section)
    total_functions = int(basis.total_number_of_functions)
    calculator = PyACECalculator(ACEBBasisSet(basis))
    sample = _sample(dataset, seed)
    first = sample[0].copy()  # warm-up: the first call sets up the evaluator
    first.calc = calculator
    first.get_forces()
    started = time.perf_counter()
    for atoms in sample:
        atoms = atoms.copy()
        atoms.calc = calculator
        atoms.get_forces()
    elapsed = time.perf_counter() - started
    sample_atoms = sum(len(atoms) for atoms in sample)
    us_per_atom = 1e6 * elapsed / sample_atoms
    fitted_atoms = max(1, round(dataset.n_atoms * (1.0 - test_size)))
    evaluation_s = us_per_atom * 1e-6 * fitted_atoms
    return CostEstimate(
        evaluator_us_per_atom=us_per_atom,
        sample_atoms=sample_atoms,
        fitted_atoms=fitted_atoms,
        total_functions=total_functions,
        seconds_per_iteration=ITERATION_PER_EVALUATION * evaluation_s,
        startup_s=(STARTUP_FIXED_S + TRACING_S * (2 if test_size > 0 else 1)) * machine_load(),
        finish_s=FINISH_FIXED_S + FINISH_EVALUATIONS * us_per_atom * 1e-6 * dataset.n_atoms,
    )


def machine_load() -> float:
    """How many times slower than idle a start-up runs now: the load average of the last
    minute per core, at least 1 (1 when the system does not tell)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 1.0
    return max(1.0, load / (os.cpu_count() or 1))


def _sample(dataset: Dataset, seed: int) -> list[Any]:
    order = np.random.default_rng(seed).permutation(len(dataset))
    sample = []
    atoms_so_far = 0
    for index in order:
        atoms = dataset[int(index)].atoms
        sample.append(atoms)
        atoms_so_far += len(atoms)
        if atoms_so_far >= SAMPLE_ATOMS:
            break
    return sample


def _seconds(value: float) -> str:
    return f"{value:.2g} s" if value < 10 else f"{value:.0f} s"
