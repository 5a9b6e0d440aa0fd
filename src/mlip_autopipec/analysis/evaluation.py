"""Scoring a trained potential on labelled structures it may never have seen."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mlip_autopipec.domain_models.dataset import Dataset, LabelledStructure
from mlip_autopipec.domain_models.metrics import FitMetrics, metrics_from_errors, rmse_mae_mev
from mlip_autopipec.domain_models.potential import Potential

#: Files of an evaluation report.
EVALUATION_JSON = "evaluation.json"
EVALUATION_TXT = "evaluation.txt"
ENERGY_PARITY_PNG = "energy_parity.png"
FORCE_PARITY_PNG = "force_parity.png"
#: Every file an evaluation writes into its report directory.
EVALUATION_FILES = (EVALUATION_JSON, EVALUATION_TXT, ENERGY_PARITY_PNG, FORCE_PARITY_PNG)


@dataclass(frozen=True)
class StructureError:
    """Errors of one structure: energy per atom (meV/atom), forces (meV/Å), and where it lies."""

    index: int
    name: str
    n_atoms: int
    energy_error_mev_per_atom: float
    force_rmse_mev_per_angstrom: float
    max_force_error_mev_per_angstrom: float  # the largest error vector of one atom
    shortest_distance: float | None  # Å; None: no two atoms within 6 Å
    max_gamma: float | None  # None: the potential has no active set


@dataclass(frozen=True)
class Evaluation:
    """How well a potential predicts a dataset: totals, forces per element, every structure."""

    metrics: FitMetrics
    force_by_element: dict[str, dict[str, float]]  # element -> rmse/mae in meV/Å
    structures: tuple[StructureError, ...]
    # For parity plots: per-atom energies (eV/atom) and force components (eV/Å) with elements.
    energy_reference: np.ndarray
    energy_predicted: np.ndarray
    force_reference: np.ndarray
    force_predicted: np.ndarray
    force_elements: np.ndarray
    #: Above this gamma a structure lies outside the training set (the active set's tolerance).
    gamma_tolerance: float = 1.0

    def worst(self, count: int = 5) -> list[StructureError]:
        """The structures with the largest force RMSE, worst first."""
        ranked = sorted(self.structures, key=lambda s: s.force_rmse_mev_per_angstrom, reverse=True)
        return ranked[:count]


def evaluate_potential(potential: Potential, dataset: Dataset) -> Evaluation:
    """Predict every structure of ``dataset`` with the deployed potential (ACE + baseline).

    Energies are total energies compared per atom, forces per Cartesian component; with an
    active set, each structure's largest extrapolation grade gamma is recorded too.
    """
    graded = potential.active_set_file is not None
    calculator = potential.ase_calculator(extrapolation=graded)
    energy_ref, energy_pred, force_ref, force_pred, symbols = [], [], [], [], []
    structures = []
    for index, structure in enumerate(dataset):
        atoms = structure.atoms.copy()
        atoms.calc = calculator
        energy = float(atoms.get_potential_energy())
        forces = np.array(atoms.get_forces())
        gamma = float(np.max(calculator.results["gamma"])) if graded else None
        energy_ref.append(structure.energy / len(atoms))
        energy_pred.append(energy / len(atoms))
        force_ref.append(structure.forces)
        force_pred.append(forces)
        symbols += atoms.get_chemical_symbols()
        structures.append(_structure_error(index, structure, energy, forces, gamma))
    reference = np.vstack(force_ref)
    predicted = np.vstack(force_pred)
    elements = np.array(symbols)
    force_error = predicted - reference
    energy_error = np.array(energy_pred) - np.array(energy_ref)
    by_element = {}
    for element in sorted(set(symbols)):
        rmse, mae = rmse_mae_mev(force_error[elements == element])
        by_element[element] = {"rmse": rmse, "mae": mae}
    metrics = metrics_from_errors(energy_error, force_error)
    return Evaluation(
        metrics,
        by_element,
        tuple(structures),
        np.array(energy_ref),
        np.array(energy_pred),
        reference,
        predicted,
        elements,
        potential.gamma_tolerance,
    )


def _structure_error(
    index: int,
    structure: LabelledStructure,
    energy: float,
    forces: np.ndarray,
    gamma: float | None,
) -> StructureError:
    from mlip_autopipec.domain_models.neighbours import neighbour_pairs

    error = forces - structure.forces
    distances = neighbour_pairs(structure.atoms, 6.0)[2]
    return StructureError(
        index=index,
        name=structure.name,
        n_atoms=structure.n_atoms,
        energy_error_mev_per_atom=1000 * (energy - structure.energy) / structure.n_atoms,
        force_rmse_mev_per_angstrom=rmse_mae_mev(error)[0],
        max_force_error_mev_per_angstrom=1000 * float(np.linalg.norm(error, axis=1).max()),
        shortest_distance=float(distances.min()) if len(distances) else None,
        max_gamma=gamma,
    )


# -- overlap of two datasets ----------------------------------------------------------------------


def structure_key(structure: LabelledStructure) -> str:
    """A hash of a structure's atoms (numbers, positions to 1e-6 Å, cell, periodicity)."""
    atoms = structure.atoms
    digest = hashlib.sha256()
    digest.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    digest.update(np.round(atoms.positions, 6).tobytes())
    digest.update(np.round(atoms.cell.array, 6).tobytes())
    digest.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    return digest.hexdigest()


def shared_structures(first: Dataset, second: Dataset) -> list[tuple[int, int]]:
    """(index in first, index in second) of every structure present in both datasets."""
    keys: dict[str, int] = {}
    for index, structure in enumerate(first):
        keys.setdefault(structure_key(structure), index)
    return [
        (keys[key], index)
        for index, structure in enumerate(second)
        if (key := structure_key(structure)) in keys
    ]


def overlap_warning(training: Dataset, test: Dataset, test_label: str) -> str | None:
    """A warning naming the structures ``test`` shares with ``training`` (None: no overlap)."""
    shared = shared_structures(training, test)
    if not shared:
        return None
    examples = ", ".join(
        f"{test_label} {j} '{test[j].name}' = training {i} '{training[i].name}'"
        for i, j in shared[:3]
    )
    return (
        f"{len(shared)} of {len(test)} structures of the {test_label} are also in the training "
        f"data ({examples}{', ...' if len(shared) > 3 else ''}): their errors measure the fit, "
        "not how the potential does on unseen data"
    )


# -- the report -----------------------------------------------------------------------------------


def format_evaluation(evaluation: Evaluation, worst: int = 5) -> str:
    """A plain-text summary: metrics, forces per element and the worst structures."""
    m = evaluation.metrics
    lines = [
        f"{m.n_structures} structures",
        f"energy RMSE {m.energy_rmse_mev_per_atom:.2f} meV/atom (MAE "
        f"{m.energy_mae_mev_per_atom:.2f}), force RMSE {m.force_rmse_mev_per_angstrom:.1f} "
        f"meV/Å (MAE {m.force_mae_mev_per_angstrom:.1f})",
        "forces by element: "
        + ", ".join(
            f"{element} RMSE {values['rmse']:.1f} / MAE {values['mae']:.1f} meV/Å"
            for element, values in evaluation.force_by_element.items()
        ),
    ]
    gammas = [s.max_gamma for s in evaluation.structures if s.max_gamma is not None]
    if gammas:
        tolerance = evaluation.gamma_tolerance
        outside = sum(gamma > tolerance for gamma in gammas)
        lines.append(
            f"max gamma {max(gammas):.2f}; {outside} structures extrapolate (gamma > {tolerance:g})"
        )
    shortest = [s.shortest_distance for s in evaluation.structures if s.shortest_distance]
    if shortest:
        lines.append(f"shortest interatomic distance {min(shortest):.3f} Å")
    lines.append(f"worst {min(worst, len(evaluation.structures))} structures (by force RMSE):")
    lines.append(
        f"{'index':>6} {'F RMSE':>9} {'max |dF|':>9} {'dE/atom':>9} {'d_min':>7} {'gamma':>7}  name"
    )
    for s in evaluation.worst(worst):
        gamma = "-" if s.max_gamma is None else f"{s.max_gamma:.2f}"
        distance = "-" if s.shortest_distance is None else f"{s.shortest_distance:.3f}"
        lines.append(
            f"{s.index:6d} {s.force_rmse_mev_per_angstrom:9.1f} "
            f"{s.max_force_error_mev_per_angstrom:9.1f} {s.energy_error_mev_per_atom:9.2f} "
            f"{distance:>7} {gamma:>7}  {s.name}"
        )
    lines.append("(forces in meV/Å, energies in meV/atom, distances in Å)")
    return "\n".join(lines)


def write_evaluation(evaluation: Evaluation, out_dir: Path, *, worst: int = 5) -> Path:
    """Write evaluation.json, evaluation.txt and the parity plots into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "metrics": evaluation.metrics.model_dump(),
        "force_by_element_mev_per_angstrom": evaluation.force_by_element,
        "structures": [asdict(s) for s in evaluation.structures],
    }
    (out_dir / EVALUATION_JSON).write_text(json.dumps(record, indent=2) + "\n")
    (out_dir / EVALUATION_TXT).write_text(format_evaluation(evaluation, worst) + "\n")
    _plot_parity(evaluation, out_dir)
    return out_dir


def _plot_parity(evaluation: Evaluation, out_dir: Path) -> None:
    from mlip_autopipec.analysis.parity import energy_parity, force_parity  # matplotlib

    evaluated = _Evaluated(evaluation)
    energy_parity([evaluated]).savefig(out_dir / ENERGY_PARITY_PNG, dpi=110)
    force_parity([evaluated]).savefig(out_dir / FORCE_PARITY_PNG, dpi=110)


@dataclass(frozen=True)
class _Evaluated:
    """An evaluation as a set of the parity plots (analysis.parity.ParitySet)."""

    evaluation: Evaluation
    label: str = "evaluated"

    @property
    def metrics(self) -> FitMetrics:
        return self.evaluation.metrics

    @property
    def energy_reference(self) -> np.ndarray:
        return self.evaluation.energy_reference

    @property
    def energy_predicted(self) -> np.ndarray:
        return self.evaluation.energy_predicted

    @property
    def force_reference(self) -> np.ndarray:
        return self.evaluation.force_reference

    @property
    def force_predicted(self) -> np.ndarray:
        return self.evaluation.force_predicted

    @property
    def symbols(self) -> np.ndarray:
        return self.evaluation.force_elements
