"""What every trainer shares: the abstract interface, the structures it fits, the check of a
fixed test set and the record's provenance."""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from importlib import metadata
from pathlib import Path

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.isolated_atoms import AccountedDataset, account_for_structures
from mlip_autopipec.domain_models.neighbours import NeighbourTable
from mlip_autopipec.domain_models.potential import Potential, Provenance
from mlip_autopipec.errors import DatasetValidationError

log = logging.getLogger(__name__)

#: Packages whose versions are recorded in every potential's provenance.
RECORDED_PACKAGES = ("mlip-autopipec", "python-ace", "tensorpotential", "ase", "numpy", "pandas")


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

    def split_copies(
        self, dataset: Dataset, test_dataset: Dataset | None
    ) -> tuple[Dataset, Dataset | None]:
        """The training and test sets of a fit. A given ``test_dataset`` is kept; else, when
        ``dataset`` holds identical structures, a split of ours (fit.test_size, fit.seed) keeps
        every group of copies on one side, said in a warning: a test structure with a twin in
        training would make the test errors optimistic. Else pacemaker splits (``None``)."""
        from mlip_autopipec.domain_models.lineage import split_keeping_copies_together

        if test_dataset is not None:
            return dataset, test_dataset
        fit = self.config.fit
        split = split_keeping_copies_together(dataset, fit.test_size, fit.seed)
        if split is None:
            return dataset, None
        log.warning(
            "%d structure(s) of the data are identical to another one (%d group(s)): the test "
            "set (%d structures, fit.test_size %g) is drawn by whole groups, every copy in "
            "training or every copy in the test set",
            split.n_copies,
            split.n_groups,
            len(split.test),
            fit.test_size,
        )
        return split.training, split.test

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
