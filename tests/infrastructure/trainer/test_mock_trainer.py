"""MockTrainer: prepares a run directory like the real trainer and marks its potential as fake."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlip_autopipec.config.config_model import ZBLBaseline, parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.rundir.files import DATA_FILE, TEST_DATA_FILE
from mlip_autopipec.infrastructure.trainer import MockTrainer, PacemakerTrainer, create_trainer


@pytest.mark.parametrize(
    ("kind", "trainer"), [("mock", MockTrainer), ("pacemaker", PacemakerTrainer)]
)
def test_factory_builds_the_configured_trainer(kind: str, trainer: type) -> None:
    config = parse_trainer_config({"type": kind, "cutoff": 5.0})
    assert type(create_trainer(config)) is trainer


def test_mock_run_writes_data_input_and_a_marked_placeholder(
    cu_pt_dataset: Dataset, tmp_path: Path
) -> None:
    config = parse_trainer_config({"type": "mock", "cutoff": 5.0, "b_ref": {"type": "zbl"}})
    potential = MockTrainer(config).train(cu_pt_dataset, tmp_path / "run")

    run = tmp_path / "run"
    frame = pd.read_pickle(run / DATA_FILE, compression="gzip")
    assert len(frame) == len(cu_pt_dataset)
    assert yaml.safe_load((run / "input.yaml").read_text())["potential"]["elements"] == ["Cu", "Pt"]
    assert "MOCK POTENTIAL" in potential.yace_path.read_text()
    assert potential.trainer == "mock"
    assert potential.train_metrics is None
    # The ZBL cutoffs were chosen from the data, per pair, ending at its shortest distance.
    assert isinstance(potential.baseline, ZBLBaseline)
    assert set(potential.baseline.pair_cutoffs) == {"Cu-Cu", "Cu-Pt", "Pt-Pt"}
    assert potential.baseline.pair_cutoffs["Cu-Pt"][1] == pytest.approx(2.3, abs=0.3)
    assert Potential.load(run / "potential.json") == potential
    with pytest.raises(ValueError, match="mock placeholder"):
        potential.ase_calculator()


def test_copies_within_the_data_go_wholly_to_training_or_to_the_test_set(
    cu_pt_dataset: Dataset, tmp_path: Path
) -> None:
    data = cu_pt_dataset.subset([*range(len(cu_pt_dataset)), 0, 0, 0, 1, 2, 3])
    config = parse_trainer_config({"type": "mock", "cutoff": 5.0, "fit": {"test_size": 0.3}})
    MockTrainer(config).train(data, tmp_path / "run")

    run = tmp_path / "run"
    training = pd.read_pickle(run / DATA_FILE, compression="gzip")
    test = pd.read_pickle(run / TEST_DATA_FILE, compression="gzip")
    assert len(training) + len(test) == len(data) and len(test) > 0
    assert not set(training["name"]) & set(test["name"])  # a copy keeps its original's name
    assert yaml.safe_load((run / "input.yaml").read_text())["data"]["test_filename"]


def test_one_composition_records_what_the_reference_energies_mean(tmp_path: Path) -> None:
    from ase.build import bulk

    from mlip_autopipec.oracle.emt import label_with_emt

    frames = []
    for seed in range(4):
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))
        atoms.symbols[:4] = "Pt"
        atoms.rattle(0.05, seed=seed)
        frames.append(atoms)
    config = parse_trainer_config({"type": "mock", "cutoff": 5.0, "fit": {"test_size": 0.0}})
    potential = MockTrainer(config).train(label_with_emt(frames), tmp_path / "run")

    warning = potential.reference_energies_warning
    assert warning is not None and "do not determine the per-atom energies of Cu, Pt" in warning
    assert potential.reference_energies["Cu"] == pytest.approx(potential.reference_energies["Pt"])
    assert Potential.load(tmp_path / "run").reference_energies_warning == warning


def test_the_run_keeps_each_structures_neighbour_search_for_a_next_generation(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlip_autopipec.domain_models import neighbours
    from mlip_autopipec.domain_models.neighbours import NEIGHBOURS_FILE, NeighbourTable

    config = parse_trainer_config({"type": "mock", "cutoff": 5.0, "b_ref": {"type": "zbl"}})
    MockTrainer(config).train(cu_pt_dataset, tmp_path / "run")
    saved = NeighbourTable.load(tmp_path / "run" / NEIGHBOURS_FILE, 5.0)
    assert saved is not None and len(saved) == len(cu_pt_dataset)

    # A trainer given the saved searches searches none of those structures again.
    searched: list[int] = []
    original = neighbours.summarise
    monkeypatch.setattr(
        neighbours, "summarise", lambda atoms, cutoff: searched.append(1) or original(atoms, cutoff)
    )
    trainer = MockTrainer(config)
    trainer.neighbours.update(saved)
    trainer.train(cu_pt_dataset, tmp_path / "again")
    assert searched == []
