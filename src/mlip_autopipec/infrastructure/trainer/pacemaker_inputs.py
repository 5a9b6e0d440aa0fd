"""pacemaker's inputs of a run: the plan (input.yaml decided from the data) and its files."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.domain_models.baseline import PairPotential
from mlip_autopipec.domain_models.baseline_labels import baseline_labels
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.neighbours import NEIGHBOURS_FILE, NeighbourTable
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.trainer.base import (
    DATA_FILE,
    TEST_DATA_FILE,
    TRAINING_SET,
    DataPlan,
)
from mlip_autopipec.infrastructure.trainer.data_file import dataset_to_dataframe, write_data_file
from mlip_autopipec.infrastructure.trainer.input_yaml import (
    INPUT_YAML,
    DataSection,
    PacemakerInput,
    build_pacemaker_input,
)


@dataclass(frozen=True, kw_only=True)
class RunPlan(DataPlan):
    """The data's plan and pacemaker's input built from it, before any file is written."""

    pacemaker_input: PacemakerInput


def plan_pacemaker_run(
    config: TrainerConfig,
    dataset: Dataset,
    data: DataPlan,
    *,
    n_training: int | None = None,
    fitting: bool = True,
) -> RunPlan:
    """pacemaker's input for ``dataset`` under the plan ``data``.

    ``n_training`` is the number of structures that will be fitted (fewer than the dataset
    after a selection); their atoms (in proportion) size the basis when the config leaves
    that open. With ``fitting`` (not for a selection alone), the test split must leave
    pacemaker a test structure.
    """
    n_fit = n_training or len(dataset)
    if fitting:
        check_test_split(config.fit.test_size, n_fit)
    pacemaker_input = build_pacemaker_input(
        config,
        baseline=data.baseline,
        elements=dataset.elements,
        min_distances=data.shortest_distances,
        data_filename=DATA_FILE,
        n_atoms=dataset.n_atoms * n_fit // len(dataset),
    )
    return RunPlan(
        baseline=data.baseline,
        baseline_potential=data.baseline_potential,
        reference_energies=data.reference_energies,
        shortest_distances=data.shortest_distances,
        reference_energies_warning=data.reference_energies_warning,
        neighbours=data.neighbours,
        pacemaker_input=pacemaker_input,
    )


def write_data(dataset: Dataset, plan: DataPlan, path: Path) -> Path:
    """pacemaker's data file of ``dataset``, with the labels the fit sees (residuals)."""
    return write_fit_data(
        dataset, plan.reference_energies, plan.baseline_potential, path, plan.neighbours
    )


def write_fit_data(
    dataset: Dataset,
    reference_energies: Mapping[str, float],
    baseline_potential: PairPotential | None,
    path: Path,
    neighbours: NeighbourTable | None = None,
) -> Path:
    """pacemaker's data file of ``dataset`` with the labels the fit sees: shifted by the
    reference energies (eV), less the baseline (delta learning). ``neighbours``: the
    structures' neighbour searches, which spare the baseline's where it does not reach."""
    # Delta learning: ACE is fitted to what the baseline leaves of the labels.
    labels = (
        None
        if baseline_potential is None
        else baseline_labels(baseline_potential, (s.atoms for s in dataset), neighbours)
    )
    frame = dataset_to_dataframe(dataset, dict(reference_energies), labels)
    write_data_file(frame, path)
    return path


def write_inputs(
    dataset: Dataset, workdir: Path, plan: RunPlan, test_dataset: Dataset | None = None
) -> None:
    """Write pacemaker's data file(s), input.yaml and the safe copy of the structures.

    With ``test_dataset``, pacemaker's test set is that file (``data: test_filename``)
    instead of a random split of the training data.
    """
    write_data(dataset, plan, workdir / DATA_FILE)
    dataset.write(workdir / TRAINING_SET)
    pacemaker_input = plan.pacemaker_input
    if test_dataset is not None:
        write_data(test_dataset, plan, workdir / TEST_DATA_FILE)
        data = DataSection(filename=DATA_FILE, test_filename=TEST_DATA_FILE)
        pacemaker_input = pacemaker_input.model_copy(update={"data": data})
    pacemaker_input.write(workdir / INPUT_YAML)
    if plan.neighbours is not None:  # a next generation searches only its new structures
        plan.neighbours.save(workdir / NEIGHBOURS_FILE)


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
