"""The loop's selection of unlabelled candidates: pace_select against the tiny Cu-Pt potential's
active set (real), and what is refused before it runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.loop.selection import select_candidates

CONFIG = parse_trainer_config({"type": "pacemaker", "cutoff": 4.5})


def _candidates(count: int) -> list[Atoms]:
    """Unlabelled Cu-Pt cells (8 atoms; 0 and 3: 16), ever more strained and rattled."""
    result = []
    for index in range(count):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.08 * index, cubic=True).repeat((2, 1, 1))
        if index % 3 == 0:
            atoms = atoms.repeat((2, 1, 1))
        atoms.symbols[[1, 4]] = "Pt"
        atoms.rattle(0.05 * (1 + index), seed=index)
        result.append(atoms)
    return result


@pytest.mark.requires_pacemaker
def test_selects_at_most_the_cap_from_unlabelled_frames(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    candidates = _candidates(6)
    assert all(atoms.calc is None for atoms in candidates)  # no energies, no forces
    outcome = select_candidates(CONFIG, tiny_cupt, candidates, 2, None, tmp_path)
    assert 1 <= len(outcome.indices) <= 2
    assert len(set(outcome.indices)) == len(outcome.indices)
    assert all(0 <= index < 6 for index in outcome.indices)
    assert "pace_select" in outcome.method
    assert (tmp_path / "pace_select.log").exists()


@pytest.mark.requires_pacemaker
def test_the_atom_cap_keeps_what_fits(tmp_path: Path, tiny_cupt: Potential) -> None:
    candidates = _candidates(6)
    outcome = select_candidates(CONFIG, tiny_cupt, candidates, None, 12, tmp_path)
    assert sum(len(candidates[index]) for index in outcome.indices) <= 12
    assert len(outcome.indices) == 1  # an 8-atom cell: 8 + 8 would not fit, 16 never does
    assert len(candidates[outcome.indices[0]]) == 8


def test_no_candidates_runs_nothing(tmp_path: Path, tiny_cupt: Potential) -> None:
    outcome = select_candidates(CONFIG, tiny_cupt, [], 5, None, tmp_path / "select")
    assert outcome.indices == [] and not (tmp_path / "select").exists()


def test_a_potential_without_active_set_is_refused(tmp_path: Path, tiny_cupt: Potential) -> None:
    no_active_set = tiny_cupt.model_copy(update={"active_set_file": None})
    with pytest.raises(TrainerError, match="active set"):
        select_candidates(CONFIG, no_active_set, _candidates(2), 1, None, tmp_path)


def test_an_unknown_element_is_refused(tmp_path: Path, tiny_cupt: Potential) -> None:
    candidates = _candidates(2)
    candidates[1].symbols[0] = "Au"
    with pytest.raises(TrainerError, match="Au"):
        select_candidates(CONFIG, tiny_cupt, candidates, 1, None, tmp_path)


def test_a_frame_an_atom_has_left_is_not_offered(tmp_path: Path, tiny_cupt: Potential) -> None:
    # Molecules break apart in hot MD; the trainer cannot fit an atom without neighbours.
    apart = _candidates(2)
    for atoms in apart:
        atoms.center(vacuum=0.0)
        atoms.pbc = False
        atoms.positions[0] += [0.0, 0.0, 20.0]
    outcome = select_candidates(CONFIG, tiny_cupt, apart, 5, None, tmp_path / "select")
    assert outcome.indices == [] and "an atom without neighbours" in outcome.method
    assert not (tmp_path / "select").exists()  # pace_select did not run
