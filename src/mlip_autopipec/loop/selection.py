"""D-optimal selection of unlabelled MD frames against the current potential's active set.

The trainer's selection (infrastructure/trainer/selection.py) works on a labelled Dataset; the
loop's candidates have no labels yet (that is the point: only the selected ones are sent to the
oracle). pace_select itself needs none: it measures the ACE B-projections of the structures
against the previous potential's basis (``-p``) and active set (``-a``), so this thin path hands
it the bare structures and runs it through the same program profile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from ase import Atoms

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.domain_models.isolated_atoms import atoms_without_neighbours
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.infrastructure.pacemaker.data_file import read_data_file, write_data_file
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile, log_name
from mlip_autopipec.loop.parts import SelectOutcome

log = logging.getLogger(__name__)

CANDIDATES = "candidates.pckl.gzip"
SELECTED = "selected.pkl.gz"
METHOD = "D-optimal against the current active set (pace_select -a)"


def select_candidates(
    config: TrainerConfig,
    potential: Potential,
    candidates: Sequence[Atoms],
    max_structures: int | None,
    max_atoms: int | None,
    workdir: Path,
) -> SelectOutcome:
    """The candidates that add most to what ``potential``'s active set covers: at most
    ``max_structures`` of them holding at most ``max_atoms`` atoms (None: no cap); pace_select's
    files go into ``workdir``."""
    if not candidates:
        return SelectOutcome(indices=[], method="none: no candidates")
    basis, active_set = potential.yaml_path, potential.active_set_path
    if basis is None or active_set is None or not (basis.exists() and active_set.exists()):
        raise TrainerError(
            f"{potential.run_dir} has no .yaml potential with its .asi active set: the loop's "
            "selection needs both (a pacemaker potential)"
        )
    unknown = sorted({s for atoms in candidates for s in atoms.symbols} - set(potential.elements))
    if unknown:
        raise TrainerError(f"candidates hold {unknown}, which the potential does not know")
    # A frame in which an atom has left all others (a molecule broke apart) is one the trainer
    # cannot fit: labelling it would waste an oracle call.
    apart = {
        i
        for i, atoms in enumerate(candidates)
        if len(atoms_without_neighbours(atoms, config.cutoff))
    }
    if apart:
        log.info(
            "%d of %d candidates left out: an atom has no neighbour within the cutoff (%s Å)",
            len(apart),
            len(candidates),
            config.cutoff,
        )
    # A structure larger than the atom cap never fits: offered, pace_select may pick it alone.
    offered = [
        i
        for i, atoms in enumerate(candidates)
        if i not in apart and (max_atoms is None or len(atoms) <= max_atoms)
    ]
    if not offered:
        why = "an atom without neighbours or too many atoms" if apart else f"over {max_atoms} atoms"
        return SelectOutcome(indices=[], method=f"none: every candidate has {why}")
    workdir.mkdir(parents=True, exist_ok=True)
    names = [f"candidate_{index}" for index in offered]
    frame = pd.DataFrame({"name": names, "ase_atoms": [candidates[i] for i in offered]})
    write_data_file(frame, workdir / CANDIDATES)
    wanted = len(offered) if max_structures is None else min(max_structures, len(offered))
    (workdir / SELECTED).unlink(missing_ok=True)  # a half-done earlier attempt's
    profile = ProgramProfile.for_config(config, None, ("pace_select",))
    arguments = ["-p", str(basis), "-a", str(active_set), "-m", str(wanted)]
    arguments += ["-g", str(config.active_set.gamma_tolerance), "-o", SELECTED, CANDIDATES]
    profile.run("pace_select", arguments, workdir)
    if not (workdir / SELECTED).exists():
        raise TrainerError(
            f"pace_select wrote no {SELECTED}",
            workdir=workdir,
            log_path=workdir / log_name("pace_select"),
        )
    chosen = read_data_file(workdir / SELECTED)
    position = dict(zip(names, offered, strict=True))
    try:
        indices = [position[str(name)] for name in chosen["name"]]
    except KeyError as error:
        raise TrainerError(f"pace_select returned an unknown structure {error}") from None
    return SelectOutcome(indices=_within_atoms(indices, candidates, max_atoms), method=METHOD)


def _within_atoms(
    indices: Sequence[int], candidates: Sequence[Atoms], max_atoms: int | None
) -> list[int]:
    """The chosen structures, in order, that fit into ``max_atoms`` (None: all)."""
    if max_atoms is None:
        return list(indices)
    kept, used = [], 0
    for index in indices:
        if used + len(candidates[index]) <= max_atoms:
            kept.append(index)
            used += len(candidates[index])
    return kept
