"""What every trainer shares: the abstract interface, the data's energy scale and baseline,
the record's provenance and the names of the data files of a run directory."""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mlip_autopipec.config.config_model import Baseline, TrainerConfig
from mlip_autopipec.domain_models.baseline import PairPotential, pair_potential, resolve_baseline
from mlip_autopipec.domain_models.dataset import Dataset, shortest_distances
from mlip_autopipec.domain_models.isolated_atoms import AccountedDataset, account_for_structures
from mlip_autopipec.domain_models.neighbours import NeighbourTable
from mlip_autopipec.domain_models.potential import Potential, Provenance
from mlip_autopipec.domain_models.reference_energies import reference_energies_for
from mlip_autopipec.errors import ConfigurationError, DatasetValidationError

DATA_FILE = "training_data.pckl.gzip"
#: The structures handed to pacemaker, with their original labels, in a format that cannot run
#: code when read (``evaluate`` and later generations read this, never the pickle).
TRAINING_SET = "training_set.extxyz"
#: The fixed test set given with ``test_dataset`` (pacemaker's ``data: test_filename``).
TEST_DATA_FILE = "test_data.pckl.gzip"

log = logging.getLogger(__name__)

#: Packages whose versions are recorded in every potential's provenance.
RECORDED_PACKAGES = ("mlip-autopipec", "python-ace", "tensorpotential", "ase", "numpy", "pandas")


@dataclass(frozen=True)
class DataPlan:
    """What any trainer decides from the data before any file is written: the energy scale
    (reference energies, eV per atom of each element) and the baseline the fit corrects."""

    baseline: Baseline
    baseline_potential: PairPotential | None
    reference_energies: dict[str, float]
    shortest_distances: dict[tuple[str, str], float]
    #: What the reference energies mean when the data do not determine them (else None).
    reference_energies_warning: str | None = None
    #: Each structure's neighbours within the cutoff (for the baseline's labels).
    neighbours: NeighbourTable | None = None


class BaseTrainer(ABC):
    """Fits a potential to a dataset; every artifact goes into the given work directory."""

    def __init__(self, config: TrainerConfig) -> None:
        self.config = config
        self.neighbours = NeighbourTable(config.cutoff)  # one search per structure, kept

    @abstractmethod
    def train(
        self,
        dataset: Dataset,
        workdir: Path,
        *,
        test_dataset: Dataset | None = None,
        previous: Potential | None = None,
    ) -> Potential:
        """Fit a potential to ``dataset``; files go into ``workdir``, which is created if needed.

        ``test_dataset``: a fixed test set, instead of a random split of ``dataset``.
        ``previous``: the potential this one is the next generation of (its data accumulate).
        """

    def account_for_structures(self, dataset: Dataset) -> AccountedDataset:
        """The structures to fit, and the free atoms and unusable structures kept out of it
        (domain_models.isolated_atoms); raises DatasetValidationError naming an unusable one."""
        return account_for_structures(
            dataset,
            self.config.cutoff,
            drop=self.config.structures_without_neighbours == "drop",
            neighbours=self.neighbours,
        )

    def plan_data(
        self, dataset: Dataset, free_atom_energies: Mapping[str, float] | None = None
    ) -> DataPlan:
        """Reference energies, shortest distances and the baseline with its cutoffs.

        ``free_atom_energies`` (eV, per element) are the reference energies of those elements
        when ``reference_energies`` is 'auto'.
        """
        setting = self.config.reference_energies
        known = {e: v for e, v in (free_atom_energies or {}).items() if e in dataset.elements}
        try:
            references = reference_energies_for(setting, dataset, known)
        except ValueError as error:
            raise ConfigurationError([("trainer.reference_energies", str(error))]) from error
        distances = shortest_distances(dataset, self.config.cutoff, self.neighbours)
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
            baseline = resolve_baseline(self.config.b_ref, distances, dataset.elements)
            baseline_potential = pair_potential(baseline, dataset.elements)
        except ValueError as error:
            raise ConfigurationError([("trainer.b_ref", str(error))]) from error
        return DataPlan(
            baseline,
            baseline_potential,
            references.energies,
            distances,
            references.warning,
            self.neighbours,
        )

    @staticmethod
    def check_test_dataset(dataset: Dataset, test_dataset: Dataset) -> None:
        """Refuse test elements the training data lack; warn about structures in both."""
        from mlip_autopipec.analysis.evaluation import overlap_warning

        unknown = sorted(set(test_dataset.elements) - set(dataset.elements))
        if unknown:
            raise DatasetValidationError(
                f"the test data hold {unknown}, which the training data (elements "
                f"{list(dataset.elements)}) do not",
                source=test_dataset.source,
            )
        warning = overlap_warning(dataset, test_dataset, "test data")
        if warning is not None:
            log.warning("%s", warning)

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


def installed_versions() -> dict[str, str]:
    versions = {}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
