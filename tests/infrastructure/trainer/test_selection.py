"""D-optimal selection with the real pace_select, and its settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from ase.build import bulk

from mlip_autopipec.config.config_model import ActiveSetSettings, parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential, Provenance, Selection
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.plan import write_data
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile
from mlip_autopipec.infrastructure.trainer.selection import (
    SelectionInputs,
    check_previous_potential,
    requested_count,
    select_structures,
    write_selection_inputs,
)
from mlip_autopipec.oracle.emt import label_with_emt

from ...conftest import write_executable

FAKE_PACE_SELECT = '''
"""Fake pace_select: checks its arguments and input, keeps the first structures of its input,
at most FAKE_SELECT_PER_ROUND of them (none after FAKE_SELECT_ROUNDS rounds)."""
import os, sys
import pandas as pd
args = sys.argv[1:]
value = lambda flag: args[args.index(flag) + 1]
assert os.path.isfile(value("-p")), f"expected the basis file given with -p, got {value('-p')}"
asked = int(value("-m"))
assert asked >= 1, f"expected at least 1 structure asked for, got {asked}"
assert 1 <= float(value("-g")), value("-g")
frame = pd.read_pickle(args[-1], compression="gzip")
assert {"ase_atoms", "name", "energy", "forces"} <= set(frame.columns), list(frame.columns)
with open("fake_pace_select_calls.txt", "a") as calls:
    calls.write(f"{asked} {len(frame)}\\n")
done = sum(1 for _ in open("fake_pace_select_calls.txt")) - 1
per_round = int(os.environ["FAKE_SELECT_PER_ROUND"])
if done >= int(os.environ.get("FAKE_SELECT_ROUNDS", "1000")):
    per_round = 0
frame.reset_index(drop=True).iloc[: min(asked, per_round)].to_pickle(
    value("-o"), compression="gzip"
)
'''


def _rattled_copies_and_one_compressed() -> Dataset:
    images = []
    for seed in range(24):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
        atoms.rattle(0.01, seed=seed)
        atoms.info["name"] = f"rattled_{seed}"
        images.append(atoms)
    compressed = bulk("Cu", "fcc", a=3.61 * 0.85, cubic=True).repeat((2, 1, 1))
    compressed.rattle(0.01, seed=99)
    compressed.info["name"] = "compressed"
    images.insert(11, compressed)
    return label_with_emt(images)


def test_requested_count_from_size_or_fraction(caplog: pytest.LogCaptureFixture) -> None:
    assert requested_count(ActiveSetSettings(enabled=True, max_structures=7), 100) == 7
    assert requested_count(ActiveSetSettings(enabled=True, fraction=0.25), 10) == 3
    with caplog.at_level(logging.INFO):
        assert requested_count(ActiveSetSettings(enabled=True, max_structures=500), 100) == 100
        assert requested_count(ActiveSetSettings(enabled=True, fraction=1.0), 100) == 100
    assert "500 of the 100 structures: all are used, nothing is selected" in caplog.text
    assert "100 of the 100 structures: all are used" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # max_atoms: the structures of average size (here 5 atoms) that hold them
    assert requested_count(ActiveSetSettings(enabled=True, max_atoms=60), 100, 500) == 12


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"enabled": True, "max_structures": 0}, "trainer.active_set.max_structures"),
        ({"enabled": True, "fraction": 0.0}, "trainer.active_set.fraction"),
        ({"enabled": True, "fraction": 1.5}, "trainer.active_set.fraction"),
        ({"enabled": True}, "needs max_structures or fraction"),
        ({"enabled": True, "fraction": 0.5, "max_structures": 3}, "not both"),
        ({"enabled": True, "fraction": 0.5, "max_atoms": 30}, "not both"),
        ({"enabled": True, "max_atoms": 0}, "trainer.active_set.max_atoms"),
    ],
)
def test_bad_selection_settings_name_the_field(settings: dict, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_trainer_config({"type": "pacemaker", "cutoff": 5.0, "active_set": settings})
    assert message in str(caught.value)


def test_previous_potential_must_know_every_element(tmp_path: Path) -> None:
    previous = Potential(
        run_dir=tmp_path,
        trainer="pacemaker",
        yace_file="potential.yace",
        elements=("Cu",),
        cutoff=5.0,
        provenance=Provenance(data_sha256=None, config_sha256=None),
    )
    dataset = label_with_emt([bulk("Cu", "fcc", a=3.6) * (2, 1, 1), bulk("Pt", "fcc", a=3.9)])
    with pytest.raises(ConfigurationError) as caught:
        check_previous_potential(previous, dataset)
    field, reason = caught.value.problems[0]
    assert field == "trainer.active_set.previous_potential"
    assert "['Pt']" in reason


@pytest.mark.requires_pacemaker
def test_pace_select_keeps_the_requested_number_and_the_odd_one_out(tmp_path: Path) -> None:
    dataset = _rattled_copies_and_one_compressed()
    config = parse_trainer_config(
        {
            "type": "pacemaker",
            "cutoff": 4.5,
            "ace_params": {"number_of_functions_per_element": 6},
            "active_set": {"enabled": True, "max_structures": 8},
        }
    )
    plan = PacemakerTrainer(config).plan_run(dataset)
    inputs = write_selection_inputs(dataset, plan, None, tmp_path)

    selection = select_structures(
        dataset,
        inputs,
        wanted=8,
        settings=config.active_set,
        workdir=tmp_path,
        profile=ProgramProfile.for_config(config, programs=["pace_select"]),
    )

    assert selection.n_selected == 8
    assert selection.n_total == 25
    assert len(set(selection.indices)) == 8
    assert 11 in selection.indices and "compressed" in selection.names
    assert [dataset[i].name for i in selection.indices] == list(selection.names)
    record = json.loads((tmp_path / "selection" / "selection.json").read_text())
    assert record["indices"] == list(selection.indices)
    rounds = list((tmp_path / "selection").glob("candidates_*.pckl.gzip"))
    assert record["rounds"] == len(rounds) >= 1


@pytest.mark.requires_pacemaker
def test_max_atoms_bounds_the_atoms_of_the_selection(tmp_path: Path) -> None:
    dataset = _rattled_copies_and_one_compressed()  # 8 atoms each, and large cells of 32:
    big = [bulk("Cu", "fcc", a=3.61 * (0.95 + 0.02 * k), cubic=True) * (2, 2, 2) for k in range(4)]
    for k, atoms in enumerate(big):
        atoms.rattle(0.05, seed=k)
        atoms.info["name"] = f"big_{k}"
    dataset = Dataset.from_atoms([*dataset.to_atoms(), *label_with_emt(big).to_atoms()])
    config = parse_trainer_config(
        {
            "type": "pacemaker",
            "cutoff": 4.5,
            "ace_params": {"number_of_functions_per_element": 6},
            "active_set": {"enabled": True, "max_atoms": 60},
        }
    )
    plan = PacemakerTrainer(config).plan_run(dataset)
    inputs = write_selection_inputs(dataset, plan, None, tmp_path)

    selection = select_structures(
        dataset,
        inputs,
        wanted=requested_count(config.active_set, len(dataset), dataset.n_atoms),
        settings=config.active_set,
        workdir=tmp_path,
        profile=ProgramProfile.for_config(config, programs=["pace_select"]),
    )

    sizes = [len(dataset[index].atoms) for index in selection.indices]
    assert selection.n_atoms == sum(sizes)
    assert 8 < selection.n_atoms <= 60
    assert len(set(selection.indices)) == selection.n_selected
    # Only structures that fit are offered to a round, so each round adds at least one.
    record = json.loads((tmp_path / "selection" / "selection.json").read_text())
    assert 1 <= record["rounds"] <= selection.n_selected


@pytest.fixture
def fake_pace_select(tmp_path: Path) -> str:
    return str(write_executable(tmp_path / "pace_select", FAKE_PACE_SELECT))


def _select_with(
    pace_select: str, tmp_path: Path, wanted: int, covered: tuple[int, ...] = ()
) -> tuple[Dataset, Selection]:
    dataset = _rattled_copies_and_one_compressed()
    config = parse_trainer_config(
        {"type": "pacemaker", "cutoff": 4.5, "active_set": {"enabled": True, "max_structures": 8}}
    )
    plan = PacemakerTrainer(config).plan_run(dataset)
    selection_dir = tmp_path / "selection"
    selection_dir.mkdir()
    candidates = write_data(dataset, plan, selection_dir / "candidates.pckl.gzip")
    basis = selection_dir / "basis.yaml"
    basis.write_text("a target basis\n")  # the fake checks it exists; pace_select reads it
    selection = select_structures(
        dataset,
        SelectionInputs(candidates, basis, covered=covered),
        wanted=wanted,
        settings=config.active_set,
        workdir=tmp_path,
        profile=ProgramProfile(executables={"pace_select": pace_select}),
    )
    return dataset, selection


def _calls(tmp_path: Path) -> list[tuple[int, int]]:
    """(structures asked for, candidates given) of every pace_select round."""
    lines = (tmp_path / "selection" / "fake_pace_select_calls.txt").read_text().splitlines()
    return [(int(line.split()[0]), int(line.split()[1])) for line in lines]


def test_rounds_repeat_on_the_structures_left_until_the_number_is_reached(
    fake_pace_select: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SELECT_PER_ROUND", "3")  # each round finds fewer than asked
    dataset, selection = _select_with(fake_pace_select, tmp_path, wanted=8)

    # Round k asks for what is still missing, among the structures no round chose yet.
    assert _calls(tmp_path) == [(8, 25), (5, 22), (2, 19)]
    assert selection.indices == tuple(range(8))
    assert list(selection.names) == [dataset[i].name for i in range(8)]
    record = json.loads((tmp_path / "selection" / "selection.json").read_text())
    assert record["rounds"] == 3 and record["indices"] == list(range(8))


def test_a_round_that_finds_nothing_new_ends_the_selection_with_a_warning(
    fake_pace_select: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FAKE_SELECT_PER_ROUND", "3")
    monkeypatch.setenv("FAKE_SELECT_ROUNDS", "1")  # the second round finds nothing
    with caplog.at_level(logging.WARNING):
        _, selection = _select_with(fake_pace_select, tmp_path, wanted=8)
    assert _calls(tmp_path) == [(8, 25), (5, 22)]
    assert selection.n_selected == 3
    assert "found 3 informative structures of the 8 requested" in caplog.text


def test_structures_the_previous_active_set_covers_are_never_candidates(
    fake_pace_select: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SELECT_PER_ROUND", "3")  # the fake keeps the first ones it is given
    dataset, selection = _select_with(fake_pace_select, tmp_path, wanted=3, covered=(0, 1, 2, 4))

    assert _calls(tmp_path) == [(3, 21)]
    assert selection.indices == (3, 5, 6)
    assert list(selection.names) == [dataset[i].name for i in (3, 5, 6)]
