"""D-optimal selection of training structures with pacemaker's ``pace_select``."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlip_autopipec.config.config_model import ActiveSetSettings
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential, Selection, load_finished_run
from mlip_autopipec.errors import ConfigurationError, NotAFinishedRun, TrainerError
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.pacemaker.data_file import read_data_file, write_data_file
from mlip_autopipec.infrastructure.rundir.files import (
    CANDIDATES,
    SELECTION_DIR,
    SELECTION_JSON,
    TARGET_BASIS_YAML,
)
from mlip_autopipec.infrastructure.trainer.plan import RunPlan, write_data
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile, log_name

log = logging.getLogger(__name__)

METHOD = "D-optimal (MaxVol over ACE B-projections, pace_select)"


def requested_count(settings: ActiveSetSettings, n_total: int, n_atoms: int | None = None) -> int:
    """How many structures the settings ask for, at most ``n_total``.

    With ``max_atoms``, the structures of an average size (``n_atoms`` in all) that hold them.
    ``n_total`` (a fraction of 1, or ``max_structures`` at least the dataset) means "use all":
    there is nothing to select, which is said in the log.
    """
    if settings.fraction is not None:
        wanted = max(1, math.ceil(settings.fraction * n_total))
    elif settings.max_structures is not None:
        wanted = settings.max_structures
    elif settings.max_atoms is not None and n_atoms is not None:
        wanted = max(1, settings.max_atoms * n_total // n_atoms)
    else:
        raise ConfigurationError([("trainer.active_set", "needs max_structures or fraction")])
    if wanted >= n_total:
        log.info(
            "trainer.active_set asks for %d of the %d structures: all are used, nothing is "
            "selected",
            wanted,
            n_total,
        )
        return n_total
    return wanted


def keep_all(dataset: Dataset, workdir: Path) -> Selection:
    """The "selection" of every structure, recorded like a real one (nothing is run)."""
    selection = Selection(
        method="none: every structure is kept",
        n_selected=len(dataset),
        n_total=len(dataset),
        indices=tuple(range(len(dataset))),
        names=tuple(structure.name for structure in dataset),
        file=f"{SELECTION_DIR}/{SELECTION_JSON}",
    )
    _write_selection(selection, workdir / SELECTION_DIR, rounds=0)
    return selection


def _write_selection(selection: Selection, selection_dir: Path, *, rounds: int) -> None:
    write_text_atomic(
        selection_dir / SELECTION_JSON,
        json.dumps(selection.model_dump(mode="json") | {"rounds": rounds}, indent=1) + "\n",
    )


def write_target_basis(potential_section: Mapping[str, Any], path: Path) -> Path:
    """The (untrained) ACE basis that input.yaml's ``potential`` section describes, as .yaml.

    Its B-projections of the atomic environments are what D-optimality is measured on.
    """
    from pyace.multispecies_basisextension import create_multispecies_basis_config

    create_multispecies_basis_config(dict(potential_section)).save(str(path))
    return path


def _dataset_indices(chosen: pd.DataFrame, candidates: pd.DataFrame) -> list[int]:
    """Dataset positions of the structures pace_select chose from ``candidates``.

    pace_select numbers its output rows by their position in its input file; the candidates
    frame is indexed by dataset position. The names must agree, or the mapping is wrong.
    """
    indices = [int(candidates.index[position]) for position in chosen.index]
    expected = candidates.loc[indices, "name"].tolist()
    if expected != chosen["name"].tolist():
        raise TrainerError(
            "pace_select's output does not match its input (structure names differ); "
            "cannot tell which structures it selected"
        )
    return indices


def load_previous_potential(settings: ActiveSetSettings) -> Potential | None:
    """The potential of the previous generation (``active_set.previous_potential``), or None."""
    path = settings.previous_potential
    if path is None:
        return None
    try:
        return load_finished_run(path)
    except NotAFinishedRun as error:
        raise ConfigurationError(
            [("trainer.active_set.previous_potential", f"cannot load {path}: {error}")]
        ) from error


def check_previous_potential(previous: Potential, dataset: Dataset) -> tuple[Path, Path]:
    """The B-basis and active set files of the previous generation, checked against the data."""
    field = "trainer.active_set.previous_potential"
    unknown = sorted(set(dataset.elements) - set(previous.elements))
    if unknown:
        raise ConfigurationError(
            [
                (
                    field,
                    f"the previous potential knows {list(previous.elements)}, but the dataset "
                    f"also holds {unknown}: its active set cannot judge those environments",
                )
            ]
        )
    files = (previous.yaml_path, previous.active_set_path)
    if files[0] is None or files[1] is None or not (files[0].exists() and files[1].exists()):
        raise ConfigurationError(
            [(field, f"{previous.run_dir} has no .yaml potential with its .asi active set")]
        )
    return files[0], files[1]


@dataclass(frozen=True)
class SelectionInputs:
    """pace_select's inputs: the candidates (the dataset in pacemaker's format), the B-basis
    whose projections are measured, the active set of what is known already (or None), and
    the dataset positions of the structures that active set already covers (left out)."""

    candidates: Path
    basis_yaml: Path
    active_set: Path | None = None
    covered: tuple[int, ...] = ()


def covered_structures(previous: Potential, dataset: Dataset, tolerance: float) -> list[int]:
    """Dataset positions of the structures whose every atom grades gamma <= ``tolerance``
    under the previous potential's active set: they add nothing to it.

    pace_select cannot be left to find this: it stacks the active set's B-projections after
    the candidates', so a candidate repeating an environment of the active set (one the previous
    potential was trained on) ties with it, wins the tie, and counts as selected; structures
    holding many such environments then rank first.
    """
    from mlip_autopipec.analysis.extrapolation import extrapolation_grades

    grades = extrapolation_grades(previous, dataset)
    return [grade.index for grade in grades if grade.max_gamma <= tolerance]


def write_selection_inputs(
    dataset: Dataset,
    plan: RunPlan,
    previous: Potential | None,
    workdir: Path,
    tolerance: float = 1.01,
) -> SelectionInputs:
    """pace_select's inputs in ``workdir/selection``: the candidates and the basis of the
    planned fit, or the basis and active set of the previous generation's potential, with
    the structures it covers (max gamma <= ``tolerance``)."""
    selection_dir = workdir / SELECTION_DIR
    selection_dir.mkdir(exist_ok=True)
    candidates = write_data(dataset, plan, selection_dir / CANDIDATES)
    if previous is None:
        basis = selection_dir / TARGET_BASIS_YAML
        write_target_basis(plan.pacemaker_input.to_yaml_dict()["potential"], basis)
        return SelectionInputs(candidates, basis)
    basis, known = check_previous_potential(previous, dataset)
    covered = covered_structures(previous, dataset, tolerance)
    log.info(
        "the previous potential's active set covers %d of the %d structures (max gamma <= %g): "
        "they are left out of the selection",
        len(covered),
        len(dataset),
        tolerance,
    )
    return SelectionInputs(candidates, basis, known, tuple(covered))


def select_structures(
    dataset: Dataset,
    inputs: SelectionInputs,
    *,
    wanted: int,
    settings: ActiveSetSettings,
    workdir: Path,
    profile: ProgramProfile,
) -> Selection:
    """Select ``wanted`` structures of the candidates with pace_select (run by ``profile``).

    One pace_select round keeps the structures holding the environments that span the
    largest volume of B-projections; with ``active_set`` (a previous potential's .asi) those
    already known count too, so the new structures are those that add to it; the structures
    it covers already (``inputs.covered``) are not candidates. Rounds repeat on
    the structures left until the requested number is reached or a round finds nothing new.
    With ``settings.max_atoms`` the size is in atoms: each round asks for what the atoms left
    hold at the average size of the structures left, keeps those chosen that still fit, drops
    the others (they never will), and rounds repeat until no structure left fits; structures
    larger than the atoms left are left out before each round.
    The result is written to ``selection/selection.json``.
    """
    selection_dir = workdir / SELECTION_DIR
    selection_dir.mkdir(exist_ok=True)
    remaining = read_data_file(inputs.candidates)
    remaining = remaining.drop(index=list(inputs.covered))
    sizes = {int(index): len(dataset[int(index)].atoms) for index in remaining.index}
    max_atoms = settings.max_atoms
    selected: list[int] = []
    used = 0  # atoms selected
    round_number = 0
    while len(remaining):
        if max_atoms is None:
            if len(selected) >= wanted:
                break
            asked = wanted - len(selected)
        else:
            room = max_atoms - used
            # Structures larger than the room never fit: left in, pace_select would pick
            # them (large structures span much) round after round, one at a time.
            fits = [sizes[int(index)] <= room for index in remaining.index]
            remaining = remaining[fits]
            if not len(remaining):
                break
            left = [sizes[int(index)] for index in remaining.index]
            asked = max(1, int(room * len(left) / sum(left)))
        round_number += 1
        round_input = selection_dir / f"candidates_{round_number}.pckl.gzip"
        round_output = selection_dir / f"selected_{round_number}.pkl.gz"
        write_data_file(remaining, round_input)
        arguments = [
            "-p",
            str(inputs.basis_yaml),
            "-m",
            str(asked),
            "-g",
            str(settings.gamma_tolerance),
            "-o",
            round_output.name,
        ]
        if inputs.active_set is not None:
            arguments += ["-a", str(inputs.active_set)]
        if settings.batch_size is not None:
            arguments += ["-b", str(settings.batch_size)]
        profile.run("pace_select", [*arguments, round_input.name], selection_dir)
        if not round_output.exists():
            raise TrainerError(
                f"pace_select wrote no {round_output.name}",
                workdir=selection_dir,
                log_path=selection_dir / log_name("pace_select"),
            )
        chosen = _dataset_indices(pd.read_pickle(round_output, compression="gzip"), remaining)
        log.info("selection round %d: %d structures", round_number, len(chosen))
        if not chosen:
            break
        for index in chosen:
            if max_atoms is None or used + sizes[index] <= max_atoms:
                selected.append(index)
                used += sizes[index]
        remaining = remaining.drop(index=chosen)

    selection = Selection(
        method=METHOD,
        n_selected=len(selected),
        n_total=len(dataset),
        indices=tuple(selected),
        names=tuple(dataset[index].name for index in selected),
        file=f"{SELECTION_DIR}/{SELECTION_JSON}",
        n_atoms=used,
    )
    _write_selection(selection, selection_dir, rounds=round_number)
    if max_atoms is None and len(selected) < wanted:
        log.warning(
            "D-optimal selection found %d informative structures of the %d requested",
            len(selected),
            wanted,
        )
    return selection
