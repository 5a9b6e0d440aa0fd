"""Safety gate after a fit: isolated dimers of every element pair and compressed structures."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator

from mlip_autopipec.analysis.dimers import check_short_range
from mlip_autopipec.domain_models.checks import CompressionCheck, DimerCheck
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import FailedChecksError

log = logging.getLogger(__name__)

#: Number of training structures compressed by the gate (evenly spread over the dataset).
COMPRESSED_STRUCTURES = 5
#: Smallest volume, as a fraction of a structure's own, of the compression check.
SMALLEST_VOLUME_FRACTION = 0.6
#: Points of the compression path (volume fractions 1 down to SMALLEST_VOLUME_FRACTION).
COMPRESSION_STEPS = 21
#: The energy minimum along the path must lie at or above this volume fraction.
MINIMUM_NOT_BELOW = 0.8
#: Largest fall of E (eV) from one compression step to the next that still counts as flat.
COMPRESSION_TOLERANCE = 1e-4


def compressed(atoms: Atoms, volume_fraction: float) -> Atoms:
    """A copy scaled isotropically to ``volume_fraction`` of its volume (about its centroid
    for a molecule, with its cell for a periodic structure)."""
    scale = volume_fraction ** (1.0 / 3.0)
    result: Atoms = atoms.copy()
    result.calc = None
    if result.pbc.any():
        result.set_cell(result.cell.array * scale, scale_atoms=True)
    else:
        centre = result.positions.mean(axis=0)
        result.positions = centre + (result.positions - centre) * scale
    return result


def check_compression(
    calculator: BaseCalculator, atoms: Atoms, index: int, name: str
) -> CompressionCheck:
    """Energy of ``atoms`` along the compression path, checked as :class:`CompressionCheck` says."""
    fractions = np.linspace(1.0, SMALLEST_VOLUME_FRACTION, COMPRESSION_STEPS)
    energies = []
    for fraction in fractions:
        structure = compressed(atoms, float(fraction))
        structure.calc = calculator
        energies.append(structure.get_potential_energy())
    energy = np.array(energies)
    minimum = int(energy.argmin())
    falls = np.diff(energy[minimum:]) < -COMPRESSION_TOLERANCE
    violation = None
    if falls.any():
        violation = minimum + int(np.nonzero(falls)[0][0]) + 1
    elif fractions[minimum] < MINIMUM_NOT_BELOW:
        violation = minimum
    shortest = None
    if violation is not None:
        shortest = _shortest_distance(compressed(atoms, float(fractions[violation])))
    return CompressionCheck(
        index=index,
        name=name,
        passed=violation is None,
        violation_volume_fraction=None if violation is None else float(fractions[violation]),
        violation_shortest_distance=shortest,
        energy_rise_ev=float(energy[-1] - energy[minimum]),
    )


def _shortest_distance(atoms: Atoms) -> float:
    from ase.neighborlist import neighbor_list

    distances = neighbor_list("d", atoms, 3.0)
    return float(distances.min()) if len(distances) else float("inf")


def compression_sample(dataset: Dataset, count: int = COMPRESSED_STRUCTURES) -> list[int]:
    """Indices of the structures the gate compresses: ``count`` spread evenly, with 2+ atoms."""
    candidates = [k for k, structure in enumerate(dataset) if structure.n_atoms > 1]
    if len(candidates) <= count:
        return candidates
    picks = np.linspace(0, len(candidates) - 1, count).round().astype(int)
    return [candidates[k] for k in sorted(set(picks.tolist()))]


@dataclass(frozen=True)
class SafetyReport:
    """The results of the safety gate; ``failures`` names every failed pair and structure.

    ``not_run`` says why the gate could not evaluate the potential (pyace missing); then
    ``passed`` is None: the potential is unchecked, neither passed nor failed.
    """

    dimer_checks: tuple[DimerCheck, ...]
    compression_checks: tuple[CompressionCheck, ...]
    not_run: str | None = None

    @property
    def passed(self) -> bool | None:
        if self.not_run is not None:
            return None
        return not self.failures

    @property
    def failures(self) -> list[str]:
        found = [check.failure() for check in self.dimer_checks]
        found += [check.failure() for check in self.compression_checks]
        return [failure for failure in found if failure is not None]


def run_safety_checks(
    make_calculator: Callable[[], BaseCalculator],
    elements: Sequence[str],
    cutoff: float,
    shortest_distances: Mapping[tuple[str, str], float],
    training_data: Dataset,
    dimers_png: Path,
) -> SafetyReport:
    """The gate: dimers of every element pair (plotted to ``dimers_png``) and compression of a
    sample of the training structures, all with the deployed potential's calculator.

    Evaluating ACE needs pyace (the ``pacemaker`` extra); where it is missing (pacemaker run
    from another environment, or a fake one) the gate is not run: a warning says so and the
    report's ``passed`` is None (``checks_passed: null`` in potential.json).
    """
    try:
        calculator = make_calculator()
    except ModuleNotFoundError as error:
        if error.name != "pyace":
            raise
        reason = f"pyace is not installed in this Python ({sys.executable})"
        log.warning(
            "no safety checks (dimers, compression): %s; the potential is UNCHECKED "
            "(checks_passed: null). Install the pacemaker extra to check it.",
            reason,
        )
        return SafetyReport((), (), not_run=reason)
    dimers = check_short_range(calculator, elements, cutoff, shortest_distances, dimers_png)
    compressions = []
    for index in compression_sample(training_data):
        structure = training_data[index]
        check = check_compression(calculator, structure.atoms, index, structure.name)
        if not check.passed:
            log.warning("%s", check.failure())
        compressions.append(check)
    return SafetyReport(tuple(dimers), tuple(compressions))


def failed_checks_message(failures: Sequence[str], run_dir: Path) -> str:
    """The message of a potential that failed the gate: every failure, and how to accept it."""
    lines = [
        f"the potential in {run_dir} FAILED its safety checks and is not fit for MD:",
        *[f"  - {failure}" for failure in failures],
        "It is kept for inspection (potential.json: checks_passed false; see dimers.png).",
        "More or shorter-distance data, or a ZBL baseline (b_ref: {type: zbl}), usually help; "
        "to use it anyway, pass --accept-failed-checks (trainer.accept_failed_checks: true).",
    ]
    return "\n".join(lines)


def gate_potential(
    potential: Potential,
    shortest_distances: Mapping[tuple[str, str], float],
    training_set: Dataset,
    dimers_png: Path,
) -> tuple[Potential, SafetyReport]:
    """The safety gate on the deployed ``potential`` (ACE + baseline): isolated dimers of
    every element pair and training structures compressed to 0.6 of their volume. Returns the
    potential with the checks recorded (``checks_passed``), and the report."""
    safety = run_safety_checks(
        potential.ase_calculator,
        potential.elements,
        potential.cutoff,
        shortest_distances,
        training_set,
        dimers_png,
    )
    checked = potential.model_copy(
        update={
            "dimer_checks": safety.dimer_checks,
            "compression_checks": safety.compression_checks,
            "checks_passed": safety.passed,
        }
    )
    return checked, safety


def refuse_failed(safety: SafetyReport, run_dir: Path, *, accept: bool) -> None:
    """A potential that failed the gate is not shipped silently: FailedChecksError, or with
    ``accept`` (``accept_failed_checks``) a warning."""
    if safety.passed is not False:
        return
    message = failed_checks_message(safety.failures, run_dir)
    if not accept:
        raise FailedChecksError(message, failures=safety.failures, workdir=run_dir)
    log.warning("%s\naccepted (accept_failed_checks)", message)
