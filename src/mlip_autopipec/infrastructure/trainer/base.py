"""What every trainer shares: the abstract interface and the plan of a run."""

from __future__ import annotations

import hashlib
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mlip_autopipec.config.config_model import Baseline, TrainerConfig
from mlip_autopipec.domain_models.baseline import PairPotential, pair_potential, resolve_baseline
from mlip_autopipec.domain_models.dataset import Dataset, shortest_distances
from mlip_autopipec.domain_models.isolated_atoms import AccountedDataset, account_for_structures
from mlip_autopipec.domain_models.potential import Potential, Provenance
from mlip_autopipec.domain_models.reference_energies import reference_energies_for
from mlip_autopipec.errors import ConfigurationError, DatasetValidationError
from mlip_autopipec.infrastructure.trainer.data_file import dataset_to_dataframe, write_data_file
from mlip_autopipec.infrastructure.trainer.input_yaml import (
    INPUT_YAML,
    DataSection,
    PacemakerInput,
    build_pacemaker_input,
)
from mlip_autopipec.infrastructure.trainer.pending_run import TEST_SET

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
class RunPlan:
    """What is decided from the data before any file is written."""

    pacemaker_input: PacemakerInput
    baseline: Baseline
    baseline_potential: PairPotential | None
    reference_energies: dict[str, float]
    shortest_distances: dict[tuple[str, str], float]
    #: What the reference energies mean when the data do not determine them (else None).
    reference_energies_warning: str | None = None


class BaseTrainer(ABC):
    """Fits a potential to a dataset; every artifact goes into the given work directory."""

    def __init__(self, config: TrainerConfig) -> None:
        self.config = config

    @abstractmethod
    def train(
        self, dataset: Dataset, workdir: Path, *, test_dataset: Dataset | None = None
    ) -> Potential:
        """Fit a potential to ``dataset``; files go into ``workdir``, which is created if needed.

        ``test_dataset``: a fixed test set, instead of a random split of ``dataset``.
        """

    def account_for_structures(self, dataset: Dataset) -> AccountedDataset:
        """The structures to fit, and the free atoms and unusable structures kept out of it
        (domain_models.isolated_atoms); raises DatasetValidationError naming an unusable one."""
        return account_for_structures(
            dataset,
            self.config.cutoff,
            drop=self.config.structures_without_neighbours == "drop",
        )

    def plan_run(
        self,
        dataset: Dataset,
        *,
        n_training: int | None = None,
        free_atom_energies: Mapping[str, float] | None = None,
        fitting: bool = True,
    ) -> RunPlan:
        """Reference energies, shortest distances, baseline cutoffs and pacemaker's input.

        ``n_training`` is the number of structures that will be fitted (fewer than the dataset
        after a selection); their atoms (in proportion) size the basis when the config leaves
        that open. ``free_atom_energies`` (eV, per element) are the reference energies of those
        elements when ``reference_energies`` is 'auto'. With ``fitting`` (not for a selection
        alone), the test split must leave pacemaker a test structure.
        """
        setting = self.config.reference_energies
        known = {e: v for e, v in (free_atom_energies or {}).items() if e in dataset.elements}
        try:
            references = reference_energies_for(setting, dataset, known)
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
            baseline = resolve_baseline(self.config.b_ref, distances, dataset.elements)
            baseline_potential = pair_potential(baseline, dataset.elements)
        except ValueError as error:
            raise ConfigurationError([("trainer.b_ref", str(error))]) from error
        n_fit = n_training or len(dataset)
        if fitting:
            check_test_split(self.config.fit.test_size, n_fit)
        pacemaker_input = build_pacemaker_input(
            self.config,
            baseline=baseline,
            elements=dataset.elements,
            min_distances=distances,
            data_filename=DATA_FILE,
            n_atoms=dataset.n_atoms * n_fit // len(dataset),
        )
        return RunPlan(
            pacemaker_input,
            baseline,
            baseline_potential,
            references.energies,
            distances,
            references.warning,
        )

    @staticmethod
    def write_data(dataset: Dataset, plan: RunPlan, path: Path) -> Path:
        """pacemaker's data file of ``dataset``, with the labels the fit sees (residuals)."""
        return write_fit_data(dataset, plan.reference_energies, plan.baseline_potential, path)

    def write_inputs(
        self,
        dataset: Dataset,
        workdir: Path,
        plan: RunPlan,
        test_dataset: Dataset | None = None,
    ) -> None:
        """Write pacemaker's data file(s) and input.yaml into ``workdir``.

        With ``test_dataset``, pacemaker's test set is that file (``data: test_filename``)
        instead of a random split of the training data.
        """
        self.write_data(dataset, plan, workdir / DATA_FILE)
        dataset.write(workdir / TRAINING_SET)
        pacemaker_input = plan.pacemaker_input
        if test_dataset is not None:
            self.write_data(test_dataset, plan, workdir / TEST_DATA_FILE)
            # Its safe copy, read back by wait, train --resume and finish (never the pickle).
            test_dataset.write(workdir / TEST_SET)
            data = DataSection(filename=DATA_FILE, test_filename=TEST_DATA_FILE)
            pacemaker_input = pacemaker_input.model_copy(update={"data": data})
        pacemaker_input.write(workdir / INPUT_YAML)

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


def write_fit_data(
    dataset: Dataset,
    reference_energies: Mapping[str, float],
    baseline_potential: PairPotential | None,
    path: Path,
) -> Path:
    """pacemaker's data file of ``dataset`` with the labels the fit sees: shifted by the
    reference energies (eV), less the baseline (delta learning)."""
    baseline_labels = (
        None
        if baseline_potential is None
        else [baseline_potential.energy_and_forces(s.atoms) for s in dataset]
    )
    frame = dataset_to_dataframe(dataset, dict(reference_energies), baseline_labels)
    write_data_file(frame, path)
    return path


def check_test_split(test_size: float, n_structures: int) -> None:
    """Refuse a test split that leaves pacemaker no test structure: it keeps
    ``int(n_structures * test_size)`` of them and fails on none."""
    if test_size > 0 and int(n_structures * test_size) == 0:
        needed = math.ceil(1 / test_size - 1e-9)
        raise ConfigurationError(
            [
                (
                    "trainer.fit.test_size",
                    f"{test_size} of {n_structures} structure(s) is no test structure "
                    f"(pacemaker would fail): train on at least {needed} structures, or set "
                    "fit.test_size: 0 to fit without a test set",
                )
            ]
        )


def installed_versions() -> dict[str, str]:
    versions = {}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
