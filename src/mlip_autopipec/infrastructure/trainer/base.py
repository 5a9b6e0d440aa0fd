"""What every trainer shares: the abstract interface and the preparation of a run directory."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mlip_autopipec.config.config_model import Baseline, TrainerConfig
from mlip_autopipec.domain_models.baseline import PairPotential, pair_potential, resolve_baseline
from mlip_autopipec.domain_models.dataset import Dataset, shortest_distances
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, Potential, Provenance
from mlip_autopipec.domain_models.reference_energies import resolve_reference_energies
from mlip_autopipec.errors import ConfigurationError, TrainerError
from mlip_autopipec.infrastructure.trainer.data_file import dataset_to_dataframe, write_data_file
from mlip_autopipec.infrastructure.trainer.input_yaml import (
    INPUT_YAML,
    PacemakerInput,
    build_pacemaker_input,
)

DATA_FILE = "training_data.pckl.gzip"

#: Packages whose versions are recorded in every potential's provenance.
RECORDED_PACKAGES = ("mlip-autopipec", "python-ace", "tensorpotential", "ase", "numpy", "pandas")


@dataclass(frozen=True)
class RunPlan:
    """What is decided from the data before any file is written."""

    pacemaker_input: PacemakerInput
    baseline: Baseline
    baseline_potential: PairPotential | None
    reference_energies: dict[str, float]
    shortest_distances: dict[tuple[str, str], float]


class BaseTrainer(ABC):
    """Fits a potential to a dataset; every artifact goes into the given work directory."""

    def __init__(self, config: TrainerConfig) -> None:
        self.config = config

    @abstractmethod
    def train(self, dataset: Dataset, workdir: Path) -> Potential:
        """Fit a potential to ``dataset``; files go into ``workdir``, which is created if needed."""

    def plan_run(self, dataset: Dataset, *, n_training: int | None = None) -> RunPlan:
        """Reference energies, shortest distances, baseline cutoffs and pacemaker's input.

        ``n_training`` is the number of structures that will be fitted (fewer than the dataset
        after a selection); their atoms (in proportion) size the basis when the config leaves
        that open.
        """
        try:
            reference_energies = resolve_reference_energies(self.config.reference_energies, dataset)
        except ValueError as error:
            raise ConfigurationError([("trainer.reference_energies", str(error))]) from error
        distances = shortest_distances(dataset, search_radius=self.config.cutoff)
        if not distances:
            raise ConfigurationError(
                [
                    (
                        "trainer.cutoff",
                        f"no two atoms of the dataset are within {self.config.cutoff} Å: "
                        "nothing to fit",
                    )
                ]
            )
        try:
            baseline = resolve_baseline(self.config.b_ref, distances)
            baseline_potential = pair_potential(baseline, dataset.elements)
        except ValueError as error:
            raise ConfigurationError([("trainer.b_ref", str(error))]) from error
        pacemaker_input = build_pacemaker_input(
            self.config,
            baseline=baseline,
            elements=dataset.elements,
            min_distances=distances,
            data_filename=DATA_FILE,
            n_atoms=dataset.n_atoms * (n_training or len(dataset)) // len(dataset),
        )
        return RunPlan(pacemaker_input, baseline, baseline_potential, reference_energies, distances)

    @staticmethod
    def write_data(dataset: Dataset, plan: RunPlan, path: Path) -> Path:
        """pacemaker's data file of ``dataset``, with the labels the fit sees (residuals)."""
        # Delta learning: ACE is fitted to what the baseline leaves of the labels.
        baseline_labels = (
            None
            if plan.baseline_potential is None
            else [plan.baseline_potential.energy_and_forces(s.atoms) for s in dataset]
        )
        frame = dataset_to_dataframe(dataset, plan.reference_energies, baseline_labels)
        write_data_file(frame, path)
        return path

    def write_inputs(self, dataset: Dataset, workdir: Path, plan: RunPlan) -> None:
        """Write pacemaker's data file and input.yaml into ``workdir``."""
        self.write_data(dataset, plan, workdir / DATA_FILE)
        plan.pacemaker_input.write(workdir / INPUT_YAML)

    def provenance(self, dataset: Dataset) -> Provenance:
        """Tool versions and hashes of the data and the config, for the potential's record."""
        config_json = self.config.model_dump_json()
        return Provenance(
            tool_versions=installed_versions(),
            data_sha256=dataset.fingerprint(),
            config_sha256=hashlib.sha256(config_json.encode()).hexdigest(),
            n_structures=len(dataset),
            n_atoms=dataset.n_atoms,
        )


def prepare_workdir(workdir: Path) -> Path:
    """Create ``workdir``; refuse one that holds a finished run (it would be overwritten)."""
    workdir = Path(workdir).resolve()
    if (workdir / POTENTIAL_JSON).exists():
        raise TrainerError(
            f"{workdir} already holds a trained potential ({POTENTIAL_JSON}); "
            "choose another output directory or remove it",
            workdir=workdir,
        )
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def installed_versions() -> dict[str, str]:
    versions = {}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
