"""D-optimal selection with the real pace_select, and its settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from mlip_autopipec.config.config_model import ActiveSetSettings, parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential, Provenance
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import program_environment
from mlip_autopipec.infrastructure.trainer.runner import resolve_executable
from mlip_autopipec.infrastructure.trainer.selection import (
    check_previous_potential,
    requested_count,
    select_structures,
    write_target_basis,
)
from mlip_autopipec.oracle.emt import label_with_emt


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
    trainer = PacemakerTrainer(config)
    plan = trainer.plan_run(dataset)
    candidates = trainer.write_data(dataset, plan, tmp_path / "candidates.pckl.gzip")
    basis = write_target_basis(
        plan.pacemaker_input.to_yaml_dict()["potential"], tmp_path / "b.yaml"
    )

    selection = select_structures(
        dataset,
        candidates,
        wanted=8,
        settings=config.active_set,
        pace_select=resolve_executable("pace_select"),
        basis_yaml=basis,
        active_set=None,
        workdir=tmp_path,
        environment=program_environment(config),
    )

    assert selection.n_selected == 8
    assert selection.n_total == 25
    assert len(set(selection.indices)) == 8
    assert 11 in selection.indices and "compressed" in selection.names
    assert [dataset[i].name for i in selection.indices] == list(selection.names)
    record = json.loads((tmp_path / "selection" / "selection.json").read_text())
    assert record["indices"] == list(selection.indices)
    assert record["rounds"] >= 1
    # More rounds than one are needed when a round finds fewer structures than asked for.
    assert np.all(np.array(selection.indices) < 25)


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
    trainer = PacemakerTrainer(config)
    plan = trainer.plan_run(dataset)
    candidates = trainer.write_data(dataset, plan, tmp_path / "candidates.pckl.gzip")
    basis = write_target_basis(
        plan.pacemaker_input.to_yaml_dict()["potential"], tmp_path / "b.yaml"
    )

    selection = select_structures(
        dataset,
        candidates,
        wanted=requested_count(config.active_set, len(dataset), dataset.n_atoms),
        settings=config.active_set,
        pace_select=resolve_executable("pace_select"),
        basis_yaml=basis,
        active_set=None,
        workdir=tmp_path,
        environment=program_environment(config),
    )

    sizes = [len(dataset[index].atoms) for index in selection.indices]
    assert selection.n_atoms == sum(sizes)
    assert 8 < selection.n_atoms <= 60
    assert len(set(selection.indices)) == selection.n_selected
    # Only structures that fit are offered to a round, so each round adds at least one.
    record = json.loads((tmp_path / "selection" / "selection.json").read_text())
    assert 1 <= record["rounds"] <= selection.n_selected
