"""Real pacemaker generations: an upfit through the CLI, basis growth, a new element, history."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ase import Atoms

from mlip_autopipec.analysis.evaluation import structure_key
from mlip_autopipec.cli import EXIT_BAD_INPUT, main
from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset, LabelledStructure, shortest_distances
from mlip_autopipec.domain_models.lineage import accumulate
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.pacemaker.input_yaml import BondBlock, PacemakerInput
from mlip_autopipec.infrastructure.rundir.files import (
    INPUT_YAML,
    PARENT_POTENTIAL,
    RUN_RECORD,
    TEST_PREDICTIONS,
    TEST_SET,
    TRAIN_METRICS_TXT,
    TRAINING_SET,
)
from mlip_autopipec.infrastructure.rundir.records import RunRecord
from mlip_autopipec.infrastructure.trainer.generations.generation import (
    Generation,
    choose_start,
    inherited_config,
    lineage,
    plan_generation,
)
from mlip_autopipec.infrastructure.trainer.generations.parent import read_previous_run
from mlip_autopipec.oracle.emt import label_with_emt

from ....conftest import TINY_FIT_CONFIG, TinyFit, cu_pt_structures, train_arguments

pytestmark = [pytest.mark.slow, pytest.mark.requires_pacemaker]

#: Generation 0 is the shared fit (TINY_FIT_CONFIG); generation 1 an upfit of 3 iterations.
CONFIG = {
    **TINY_FIT_CONFIG,
    "fit": {**TINY_FIT_CONFIG["fit"], "upfit_maxiter": 3},
    "accept_failed_checks": True,  # 3 iterations: the gate's verdict is not tested here
}


def _keys(dataset: Dataset | list) -> set[str]:  # type: ignore[type-arg]
    return {structure_key(structure) for structure in dataset}


def _tested_by_pacemaker(data: Dataset, run_dir: Path) -> list[LabelledStructure]:
    """The structures of ``data`` that pacemaker's random split put into the test set of the
    fit in ``run_dir``: those named in its own test predictions (a pickle pacemaker just wrote
    in this test's directory), independently of how the trainer reads the split back."""
    names = set(pd.read_pickle(run_dir / TEST_PREDICTIONS, compression="gzip")["name"])
    return [structure for structure in data if structure.name in names]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, tiny_fit: TinyFit) -> dict[str, object]:
    """Generation 0 (the shared fit, pacemaker's random split), generation 1 through the CLI
    with new structures plus copies of a training and a test structure of the parent."""
    root = tmp_path_factory.mktemp("generations")
    parent, gen0_data = tiny_fit.potential, tiny_fit.dataset  # read back from a file
    assert CONFIG["ace_params"] == tiny_fit.config["ace_params"]  # generation 1 keeps the basis
    previous = read_previous_run(parent)
    parent_test = _tested_by_pacemaker(gen0_data, parent.run_dir)
    tested = {structure.name for structure in parent_test}
    parent_training = [structure for structure in gen0_data if structure.name not in tested]
    # New structures no closer than the parent's data: closer ones would start afresh.
    floor = shortest_distances(gen0_data, CONFIG["cutoff"])
    candidates = label_with_emt(cu_pt_structures(count=40, seed=7), source="new")
    new = [
        structure
        for structure in candidates
        if all(
            distance >= floor[pair]
            for pair, distance in shortest_distances(Dataset([structure]), CONFIG["cutoff"]).items()
        )
    ][:10]
    assert len(new) == 10
    # The structures of the new data plus a copy of one training and one test structure.
    given = Dataset([*new, parent_training[0], parent_test[0]], source="new")
    arguments = train_arguments(root, given, CONFIG, root / "gen1", data_name="new.extxyz")
    assert main([*arguments, "--previous", str(parent.run_dir)]) == 0
    given = Dataset.read(root / "new.extxyz")  # as the CLI read it
    return {
        "root": root,
        "parent": parent,
        "previous": previous,
        "given": given,
        "parent_test": parent_test,
    }


def test_the_data_accumulate_and_duplicates_count_once(chain: dict) -> None:  # type: ignore[type-arg]
    previous, given = chain["previous"], chain["given"]
    gen1 = Potential.load(chain["root"] / "gen1")
    lineage = gen1.lineage
    assert lineage is not None and lineage.generation == 1
    assert lineage.parent == str(chain["parent"].run_dir)
    # Duplicates by an independent key (hash of the rounded structure).
    known = _keys(previous.training) | _keys(previous.test)
    expected_duplicates, seen = 0, set(known)
    for structure in given:
        key = structure_key(structure)
        expected_duplicates += key in seen
        seen.add(key)
    assert lineage.n_duplicates == expected_duplicates >= 2
    assert lineage.n_added == len(given) - expected_duplicates
    training = Dataset.read(gen1.run_dir / TRAINING_SET)
    test = Dataset.read(gen1.run_dir / TEST_SET)
    assert len(training) == len(previous.training) + lineage.n_added - lineage.n_test_added
    assert len(test) == len(previous.test) + lineage.n_test_added
    assert _keys(previous.training) <= _keys(training)
    assert len(_keys(training)) == len(training)  # each structure once
    assert lineage.parent_data_sha256 == chain["parent"].provenance.data_files_sha256()
    assert lineage.added_data_sha256 == given.fingerprint()
    assert lineage.max_gamma_added is not None and lineage.max_gamma_added > 0


def test_a_test_structure_of_the_parent_is_never_trained_on(chain: dict) -> None:  # type: ignore[type-arg]
    parent_test = chain["parent_test"]  # pacemaker's own split of generation 0
    assert len(parent_test) == 6  # pacemaker's int(31 * 0.2)
    run_dir = chain["root"] / "gen1"
    training = Dataset.read(run_dir / TRAINING_SET)
    test = Dataset.read(run_dir / TEST_SET)
    assert _keys(parent_test) <= _keys(test)  # also the copy given with the new data
    assert not _keys(parent_test) & _keys(training)
    # pacemaker tested exactly that set.
    gen1 = Potential.load(run_dir)
    assert gen1.test_metrics is not None and gen1.test_metrics.n_structures == len(test)
    report = (run_dir / "report" / "mlip_autopipec" / "report.html").read_text()
    assert "the test set holds all 6 test structures of the parent" in report


def test_the_energy_scale_stays_the_parents(chain: dict) -> None:  # type: ignore[type-arg]
    gen1 = Potential.load(chain["root"] / "gen1")
    parent = chain["parent"]
    assert gen1.reference_energies == parent.reference_energies
    assert gen1.baseline == parent.baseline
    assert "of the parent" in gen1.lineage.inherited_energy_scale  # type: ignore[union-attr]


def test_an_upfit_starts_from_the_parents_coefficients(chain: dict) -> None:  # type: ignore[type-arg]
    run_dir = chain["root"] / "gen1"
    gen1 = Potential.load(run_dir)
    assert gen1.lineage is not None and gen1.lineage.fitted_from == "upfit"
    assert yaml.safe_load((run_dir / INPUT_YAML).read_text())["potential"]["filename"] == (
        PARENT_POTENTIAL
    )
    assert gen1.cost is not None and gen1.cost.iterations is not None
    assert gen1.cost.iterations <= 3  # fit.upfit_maxiter
    # ... which is what a "still improving" hint names for it, fit.maxiter for the parent.
    record = RunRecord.model_validate_json((run_dir / RUN_RECORD).read_text())
    assert record.run.maxiter_setting == "fit.upfit_maxiter"
    parent_record = (chain["parent"].run_dir / RUN_RECORD).read_text()
    assert RunRecord.model_validate_json(parent_record).run.maxiter_setting == "fit.maxiter"
    first = _metrics(run_dir)[0]
    parent_last = _metrics(chain["parent"].run_dir)[-1]
    # The regularisation depends on the coefficients only: the parent's final ones.
    assert first["reg_loss"] == pytest.approx(parent_last["reg_loss"], rel=1e-6)
    assert parent_last["reg_loss"] > 0 and _metrics(chain["parent"].run_dir)[0]["reg_loss"] == 0
    # The first-iteration force error is the parent potential's on the new training data.
    calculator = chain["parent"].ase_calculator()
    errors = []
    for structure in Dataset.read(run_dir / TRAINING_SET):
        atoms = structure.atoms.copy()
        atoms.calc = calculator
        errors.append(atoms.get_forces() - structure.forces)
    parent_rmse = float(np.sqrt(np.mean(np.vstack(errors) ** 2)))
    assert first["rmse_f_comp"] == pytest.approx(parent_rmse, rel=1e-3)


def _metrics(run_dir: Path) -> list[dict[str, float]]:
    lines = (run_dir / TRAIN_METRICS_TXT).read_text().split("\n")
    header = lines[0].split()
    return [dict(zip(header, map(float, line.split()), strict=False)) for line in lines[1:] if line]


def test_a_larger_basis_grows_from_the_parents(chain: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    previous = chain["previous"]
    config = parse_trainer_config({**CONFIG, "ace_params": {"number_of_functions_per_element": 16}})
    config, scale = inherited_config(config, previous.potential)
    generation = Generation(config, previous, None, chain["given"], scale)  # type: ignore[arg-type]
    plan, generation = plan_generation(generation, Dataset(previous.training))
    start = choose_start(generation, plan.pacemaker_input, tmp_path)
    assert start.fitted_from == "basis growth"
    assert start.pacemaker_input.potential.initial_potential == PARENT_POTENTIAL
    assert "from 12 to 16" in start.reason
    assert start.pacemaker_input.fit.maxiter == 3
    assert (tmp_path / PARENT_POTENTIAL).is_file()


def test_data_closer_than_the_parents_fade_make_a_fresh_fit(
    chain: dict,  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    previous = chain["previous"]
    config, scale = inherited_config(parse_trainer_config(CONFIG), previous.potential)
    generation = Generation(config, previous, None, chain["given"], scale)  # type: ignore[arg-type]
    plan, generation = plan_generation(generation, Dataset(previous.training))
    kept = {
        pair: BondBlock.model_validate(bond)
        for pair, bond in previous.potential_section["bonds"].items()
    }

    def fade_lowered(share: float) -> PacemakerInput:
        """The plan's input with Cu-Cu's r_in ``share`` of the parent's fade width lower."""
        section = plan.pacemaker_input.potential
        bonds = dict(kept)
        lowered = kept["Cu Cu"].r_in - share * kept["Cu Cu"].delta_in
        bonds["Cu Cu"] = kept["Cu Cu"].model_copy(update={"r_in": lowered})
        section = section.model_copy(update={"bonds": bonds})
        return plan.pacemaker_input.model_copy(update={"potential": section})

    for name in ("near", "deep"):
        (tmp_path / name).mkdir()
    near = choose_start(generation, fade_lowered(0.02), tmp_path / "near")
    assert near.fitted_from == "upfit"
    assert near.pacemaker_input.potential.bonds == kept  # the parent's fade
    deep = choose_start(generation, fade_lowered(0.2), tmp_path / "deep")
    assert deep.fitted_from == "fresh"
    assert "closer than the parent's short-range fade of ACE (Cu Cu" in deep.reason
    assert deep.pacemaker_input == fade_lowered(0.2)  # nothing of the parent's
    assert not (tmp_path / "deep" / PARENT_POTENTIAL).exists()


def test_a_new_element_forces_a_fresh_fit_with_the_parents_reference_energies(
    chain: dict,  # type: ignore[type-arg]
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    previous = chain["previous"]
    cells = []
    for atoms in cu_pt_structures(count=6, seed=3)[:6]:
        atoms.symbols[[0, 3]] = "Au"
        cells.append(atoms)
    cells.append(Atoms("AuCu", positions=[[0, 0, 0], [0, 0, 2.4]]))
    with_gold = label_with_emt(cells, source="gold")
    config, scale = inherited_config(parse_trainer_config(CONFIG), previous.potential)
    accumulated = accumulate(previous.training, previous.test, with_gold, test_size=0.2, seed=1)
    generation = Generation(config, previous, accumulated, with_gold, scale)
    with caplog.at_level(logging.INFO, logger="mlip_autopipec"):
        plan, generation = plan_generation(generation, accumulated.training)
        start = choose_start(generation, plan.pacemaker_input, tmp_path)
    assert start.fitted_from == "fresh"
    assert "new element(s) Au" in start.reason
    assert start.pacemaker_input == plan.pacemaker_input  # nothing of the parent's
    assert not (tmp_path / PARENT_POTENTIAL).exists()
    for element in ("Cu", "Pt"):  # the parent's, kept
        assert plan.reference_energies[element] == previous.potential.reference_energies[element]
    assert "Au" in plan.reference_energies and "reference energies Au" in caplog.text
    record = lineage(generation, start)
    assert record.fitted_from == "fresh" and "Au" in record.inherited_energy_scale
    assert any("new element(s) Au" in line for line in record.describe())


def test_history_prints_the_chain(
    chain: dict,  # type: ignore[type-arg]
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = chain["root"]
    assert main(["history", str(root / "gen1")]) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in printed[1:3]]
    assert [row[:2] for row in rows] == [["0", "fresh"], ["1", "upfit"]]
    parent = str(chain["parent"].run_dir)
    assert printed[1].endswith(parent) and printed[2].endswith(str(root / "gen1"))
    assert rows[0][2] == "25+6" and rows[1][2] == "33+8"
    assert (root / "gen1" / "report" / "mlip_autopipec" / "history.png").is_file()
    assert main(["history", str(root / "gen1")]) == EXIT_BAD_INPUT  # no --overwrite
    assert main(["history", str(root / "gen1"), "--overwrite"]) == 0
