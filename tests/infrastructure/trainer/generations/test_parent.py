"""A parent run is checked before a next generation continues from it: its data against its
record, its gate's verdict, its elements against its potential (a fake pacemaker fits it)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import ase.io
import pytest

from mlip_autopipec.cli import EXIT_BAD_INPUT, main
from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.lineage import Lineage
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, Potential
from mlip_autopipec.errors import OutputError
from mlip_autopipec.infrastructure.rundir.files import TRAINING_SET
from mlip_autopipec.infrastructure.rundir.records import data_sha256_now
from mlip_autopipec.infrastructure.trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.generations.parent import read_previous_run
from mlip_autopipec.report.history import chain_of

CONFIG = {"type": "pacemaker", "cutoff": 4.5, "b_ref": {"type": "zbl"}}


@pytest.fixture
def parent(cu_pt_dataset: Dataset, tmp_path: Path, fake_pacemaker: Path) -> Potential:
    return PacemakerTrainer(parse_trainer_config(CONFIG)).train(cu_pt_dataset, tmp_path / "gen0")


def _edit_record(run_dir: Path, **changes: object) -> None:
    record = json.loads((run_dir / POTENTIAL_JSON).read_text())
    (run_dir / POTENTIAL_JSON).write_text(json.dumps(record | changes))


def _rewrite_training_set(run_dir: Path, change: Callable[[list], list]) -> None:  # type: ignore[type-arg]
    images = ase.io.read(run_dir / TRAINING_SET, index=":")
    ase.io.write(run_dir / TRAINING_SET, change(images), format="extxyz")


def test_the_parents_data_are_recorded_and_their_hash_is_the_one_found(parent: Potential) -> None:
    recorded = parent.provenance.data_files[TRAINING_SET]
    assert recorded.n_structures == 13
    previous = read_previous_run(parent)
    assert previous.data_sha256 == parent.provenance.data_files_sha256()
    assert previous.data_sha256 == data_sha256_now(parent.run_dir, parent.provenance)


def test_a_parent_with_altered_energies_is_refused(parent: Potential) -> None:
    def shifted(images: list) -> list:  # type: ignore[type-arg]
        for atoms in images:
            atoms.calc.results["energy"] += 5.0 * len(atoms)
        return images

    _rewrite_training_set(parent.run_dir, shifted)
    with pytest.raises(OutputError) as caught:
        read_previous_run(Potential.load(parent.run_dir))
    message = str(caught.value)
    assert f"{parent.run_dir / TRAINING_SET} is not the data its run recorded" in message
    assert "holds the 13 structures the run recorded" in message and "energies" in message


def test_a_parent_with_dropped_structures_is_refused_through_the_cli(
    parent: Potential,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    train_argv: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _rewrite_training_set(parent.run_dir, lambda images: images[10:])
    argv = train_argv(cu_pt_dataset, CONFIG, tmp_path / "gen1", data_name="new.extxyz")

    assert main([*argv, "--previous", str(parent.run_dir)]) == EXIT_BAD_INPUT

    error = capsys.readouterr().err
    assert f"{TRAINING_SET} is not the data its run recorded in {POTENTIAL_JSON}" in error
    assert "holds 3 structures where the run fitted 13 (10 dropped)" in error
    assert not (tmp_path / "gen1").exists()


def test_a_hand_edited_hash_is_refused(parent: Potential) -> None:
    record = json.loads((parent.run_dir / POTENTIAL_JSON).read_text())
    record["provenance"]["data_files"][TRAINING_SET]["sha256"] = "0" * 64
    (parent.run_dir / POTENTIAL_JSON).write_text(json.dumps(record))
    with pytest.raises(OutputError, match="not the data its run recorded"):
        read_previous_run(Potential.load(parent.run_dir))


def test_a_parent_that_failed_its_gate_needs_explicit_acceptance(parent: Potential) -> None:
    _edit_record(parent.run_dir, checks_passed=False)
    with pytest.warns(UserWarning):
        failed = Potential.load(parent.run_dir)
    with pytest.raises(OutputError, match=r"FAILED its safety checks.*--accept-failed-checks"):
        read_previous_run(failed)
    assert read_previous_run(failed, accept_failed_checks=True).potential is failed


def test_a_parent_whose_elements_are_not_its_potentials_is_refused(parent: Potential) -> None:
    _edit_record(parent.run_dir, elements=["Cu"])
    with pytest.raises(OutputError) as caught:
        read_previous_run(Potential.load(parent.run_dir))
    message = str(caught.value)
    assert f"{POTENTIAL_JSON} says elements ['Cu']" in message
    assert "output_potential.yaml holds ['Cu', 'Pt']" in message


def test_history_warns_about_a_swapped_parent(
    parent: Potential,
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A child of ``parent``: its record, as a next generation writes it.
    child_dir = tmp_path / "gen1"
    child_dir.mkdir()
    lineage = Lineage(
        generation=1,
        parent=str(parent.run_dir),
        fitted_from="upfit",
        reason="test",
        basis_functions=1,
        n_inherited=13,
        n_added=0,
        n_duplicates=0,
        n_test_inherited=0,
        n_test_added=0,
        parent_data_sha256=read_previous_run(parent).data_sha256,
        added_data_sha256="0" * 64,
        inherited_energy_scale="the parent's",
    )
    parent.model_copy(update={"run_dir": child_dir, "lineage": lineage}).save()
    with caplog.at_level(logging.WARNING):
        assert len(chain_of(child_dir)) == 2
    assert "swapped" not in caplog.text

    # Another run in the parent's place.
    parent.run_dir.rename(tmp_path / "gen0.orig")
    PacemakerTrainer(parse_trainer_config(CONFIG)).train(
        cu_pt_dataset.subset(range(12)), parent.run_dir
    )
    with caplog.at_level(logging.WARNING):
        assert len(chain_of(child_dir)) == 2
    assert f"the parent {parent.run_dir} is not the run {child_dir} was trained from" in caplog.text
    assert "swapped" in caplog.text
