"""The run a next generation continues from: its data, test split and basis, read safely."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlip_autopipec.domain_models.dataset import Dataset, LabelledStructure
from mlip_autopipec.domain_models.neighbours import NeighbourTable
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, Potential
from mlip_autopipec.errors import DatasetValidationError, OutputError
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.pacemaker.outputs import read_predictions
from mlip_autopipec.infrastructure.pacemaker.potential_file import potential_elements
from mlip_autopipec.infrastructure.rundir.files import (
    INPUT_YAML,
    TEST_PREDICTIONS_NPZ,
    TEST_SET,
    TRAINING_SET,
)
from mlip_autopipec.infrastructure.rundir.records import check_data_files, data_sha256_now

log = logging.getLogger(__name__)

#: Keys of pacemaker's potential section that say where a fit started, not what it fits.
START_KEYS = ("filename", "initial_potential")
#: Where ACE fades out at short range (follows the shortest distances in the data): a next
#: generation keeps the parent's, with its baseline.
FADE_KEYS = ("r_in", "delta_in")


@dataclass(frozen=True)
class PreviousRun:
    """A finished run and what the next generation takes from it."""

    potential: Potential
    training: tuple[LabelledStructure, ...]
    test: tuple[LabelledStructure, ...]
    #: pacemaker's potential section of its input.yaml (how the next fit can start from it).
    potential_section: dict[str, Any]
    #: The hash of its data files as read (checked against its record where it has one).
    data_sha256: str | None = None

    @property
    def generation(self) -> int:
        lineage = self.potential.lineage
        return 0 if lineage is None else lineage.generation

    @property
    def basis_functions(self) -> int:
        """Functions per element of the parent's basis."""
        value = self.potential_section["functions"]["number_of_functions_per_element"]
        return int(value)

    def shape(self) -> dict[str, Any]:
        """The potential section without the start and the number of functions: two fits
        whose shapes are equal differ only in basis size."""
        section = {k: v for k, v in self.potential_section.items() if k not in START_KEYS}
        functions = dict(section.get("functions", {}))
        functions.pop("number_of_functions_per_element", None)
        bonds = {
            pair: {k: v for k, v in bond.items() if k not in FADE_KEYS}
            for pair, bond in section.get("bonds", {}).items()
        }
        return {**section, "functions": functions, "bonds": bonds}


def read_previous_run(
    potential: Potential,
    *,
    accept_failed_checks: bool = False,
    neighbours: NeighbourTable | None = None,
) -> PreviousRun:
    """The training and test structures of ``potential``'s run, from its safe copies
    (``training_set.extxyz``, ``test_set.extxyz`` or the names in ``test_predictions.npz``;
    never a pickle), and its pacemaker input. Raises OutputError when something is missing,
    when its data or potential are not what its record says, or when it failed its safety
    checks (unless ``accept_failed_checks``). ``neighbours``: the parent's neighbour searches
    (its ``neighbours.npz``), which its structures' checks read instead of searching again."""
    run_dir = potential.run_dir
    if potential.checks_passed is False and not accept_failed_checks:
        failures = [check.failure() for check in potential.dimer_checks]
        failures += [check.failure() for check in potential.compression_checks]
        raise OutputError(
            f"the parent run {run_dir} FAILED its safety checks ({POTENTIAL_JSON}: "
            f"checks_passed false: {'; '.join(f for f in failures if f is not None)}): a next "
            "generation continues from it only if you accept it explicitly "
            "(--accept-failed-checks, or trainer.accept_failed_checks: true)",
            path=run_dir,
        )
    if potential.trainer != "pacemaker" or potential.yaml_file is None:
        raise OutputError(
            f"{run_dir} holds no pacemaker potential (trainer: {potential.trainer}): "
            "a next generation continues only from a real fit",
            path=run_dir,
        )
    for needed in (TRAINING_SET, INPUT_YAML, potential.yaml_file):
        if not (run_dir / needed).is_file():
            raise OutputError(
                f"{run_dir} lacks {needed}, which a next generation needs", path=run_dir
            )
    try:
        written = Dataset.read(run_dir / TRAINING_SET, neighbours=neighbours)
        section = yaml.safe_load((run_dir / INPUT_YAML).read_text())["potential"]
    except (DatasetValidationError, yaml.YAMLError, KeyError, TypeError) as error:
        raise OutputError(f"{run_dir}: unreadable previous run ({error})", path=run_dir) from error
    _check_elements(potential, run_dir / potential.yaml_file)
    # Its data must be those its record describes; the child records their hash as found.
    check_data_files(run_dir, potential.provenance, POTENTIAL_JSON)
    data_sha256 = data_sha256_now(run_dir, potential.provenance)
    if (run_dir / TEST_SET).is_file():
        # A fixed test set: training_set.extxyz holds the training structures only.
        training = tuple(written)
        test = tuple(Dataset.read(run_dir / TEST_SET, neighbours=neighbours))
    else:
        training, test = _split_by_test_names(written, run_dir)
    return PreviousRun(potential, training, test, section, data_sha256)


def _check_elements(potential: Potential, yaml_path: Path) -> None:
    """OutputError when the record's elements are not those of the potential it describes."""
    try:
        held = potential_elements(yaml_path)
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
        raise OutputError(
            f"the parent's potential {yaml_path} is unreadable ({type(error).__name__})",
            path=yaml_path,
        ) from error
    if held != tuple(sorted(potential.elements)):
        raise OutputError(
            f"the parent run {potential.run_dir} is inconsistent: its {POTENTIAL_JSON} says "
            f"elements {list(potential.elements)}, but its potential {yaml_path.name} holds "
            f"{list(held)}. The record does not describe the potential (edited, or files "
            "mixed from different runs), so no next generation can start from it",
            path=potential.run_dir,
        )


def _split_by_test_names(
    written: Dataset, run_dir: Path
) -> tuple[tuple[LabelledStructure, ...], tuple[LabelledStructure, ...]]:
    """pacemaker's random split, recovered from the names of its test predictions: a name
    shared by several structures puts them all into the test set (never train on a test one)."""
    npz = run_dir / TEST_PREDICTIONS_NPZ
    if not npz.is_file():
        return tuple(written), ()
    test_names = {str(name) for name in read_predictions(npz).names}
    training = tuple(s for s in written if s.name not in test_names)
    test = tuple(s for s in written if s.name in test_names)
    if len(test) != len(test_names):
        log.warning(
            "%s: %d test structure names of the previous fit match %d structures of %s; all "
            "are kept as test structures",
            run_dir,
            len(test_names),
            len(test),
            TRAINING_SET,
        )
    return training, test


def copy_for_start(parent_yaml: Path, destination: Path) -> Path:
    """The parent's B-basis potential without pacemaker's fit-cycle counters, which would make
    pacemaker skip the fit (it counts the parent's finished cycle as this fit's)."""
    data = yaml.safe_load(parent_yaml.read_text())
    metadata = data.get("metadata") or {}
    for key in ("_fit_cycles", "_loss"):
        metadata.pop(key, None)
    write_text_atomic(destination, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    return destination
