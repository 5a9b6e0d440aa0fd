"""What a run decides before pacemaker starts: the plan (energy scale, baseline and pacemaker's
input, decided from the data), pacemaker's input files, and the run as prepared for its fit."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlip_autopipec.config.config_model import Baseline, TrainerConfig
from mlip_autopipec.domain_models.baseline import PairPotential, pair_potential, resolve_baseline
from mlip_autopipec.domain_models.baseline_labels import baseline_labels
from mlip_autopipec.domain_models.dataset import Dataset, shortest_distances
from mlip_autopipec.domain_models.isolated_atoms import AccountedDataset
from mlip_autopipec.domain_models.neighbours import NeighbourTable
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.domain_models.reference_energies import (
    compositions_span_elements,
    reference_energies_for,
)
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.pacemaker.data_file import dataset_to_dataframe, write_data_file
from mlip_autopipec.infrastructure.pacemaker.input_yaml import (
    DataSection,
    PacemakerInput,
    build_pacemaker_input,
)
from mlip_autopipec.infrastructure.rundir.files import (
    DATA_FILE,
    INPUT_YAML,
    NEIGHBOURS_FILE,
    TEST_DATA_FILE,
    TRAINING_SET,
)
from mlip_autopipec.infrastructure.rundir.records import PendingRun
from mlip_autopipec.infrastructure.trainer.cost.budget import SizedFit
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile


@dataclass(frozen=True)
class RunPlan:
    """What a trainer decides from the data before any file is written: the energy scale
    (reference energies, eV per atom of each element), the baseline the fit corrects, and
    pacemaker's input built from them."""

    baseline: Baseline
    baseline_potential: PairPotential | None
    reference_energies: dict[str, float]
    shortest_distances: dict[tuple[str, str], float]
    pacemaker_input: PacemakerInput
    #: What the reference energies mean when the data do not determine them (else None).
    reference_energies_warning: str | None = None
    #: Each structure's neighbours within the cutoff (for the baseline's labels).
    neighbours: NeighbourTable | None = None


@dataclass(frozen=True)
class CheckedRun:
    """What a fit finds before anything is written: how its programs run here, the previous
    generation's potential (for a selection), the structures to fit and the test set."""

    profile: ProgramProfile
    previous: Potential | None
    accounted: AccountedDataset
    #: The fixed test set (given, or a split of ours keeping copies together); None: pacemaker
    #: draws it (fit.test_size).
    test: Dataset | None


@dataclass(frozen=True)
class PreparedRun:
    """A claimed run directory with pacemaker's input written: what the fit's end needs."""

    workdir: Path
    run: PendingRun
    training_set: Dataset
    test_dataset: Dataset | None
    #: The cost estimate and the iterations a time budget allows.
    sized: SizedFit | None = None


def plan_run(
    config: TrainerConfig,
    dataset: Dataset,
    *,
    n_training: int | None = None,
    free_atom_energies: Mapping[str, float] | None = None,
    fitting: bool = True,
    neighbours: NeighbourTable | None = None,
) -> RunPlan:
    """Reference energies, shortest distances, the baseline with its cutoffs, and pacemaker's
    input for ``dataset``; ``neighbours``: the structures' neighbour searches, kept and reused.

    ``free_atom_energies`` (eV, per element) are the reference energies of those elements
    when ``reference_energies`` is 'auto'. ``n_training`` is the number of structures that
    will be fitted (fewer than the dataset after a selection); their atoms (in proportion)
    size the basis when the config leaves that open. With ``fitting`` (not for a selection
    alone), the test split must leave pacemaker a test structure.
    """
    setting = config.reference_energies
    known = {e: v for e, v in (free_atom_energies or {}).items() if e in dataset.elements}
    try:
        references = reference_energies_for(setting, dataset, known)
    except ValueError as error:
        raise ConfigurationError([("trainer.reference_energies", str(error))]) from error
    distances = shortest_distances(dataset, config.cutoff, neighbours)
    if not distances:
        raise ConfigurationError(
            [
                (
                    "trainer.cutoff",
                    f"no two atoms of the dataset are within {config.cutoff} Å: nothing to fit",
                )
            ]
        )
    try:
        baseline = resolve_baseline(config.b_ref, distances, dataset.elements)
        baseline_potential = pair_potential(baseline, dataset.elements)
    except ValueError as error:
        raise ConfigurationError([("trainer.b_ref", str(error))]) from error
    n_fit = n_training or len(dataset)
    if fitting:
        check_test_split(config.fit.test_size, n_fit)
    pacemaker_input = build_pacemaker_input(
        config,
        baseline=baseline,
        elements=dataset.elements,
        min_distances=distances,
        data_filename=DATA_FILE,
        n_atoms=dataset.n_atoms * n_fit // len(dataset),
        # only energy_based weighting asks (a pass over every atom of the data)
        hull=config.fit.weighting != "energy_based" or compositions_span_elements(dataset),
    )
    return RunPlan(
        baseline=baseline,
        baseline_potential=baseline_potential,
        reference_energies=references.energies,
        shortest_distances=distances,
        pacemaker_input=pacemaker_input,
        reference_energies_warning=references.warning,
        neighbours=neighbours,
    )


def write_data(dataset: Dataset, plan: RunPlan, path: Path) -> Path:
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
