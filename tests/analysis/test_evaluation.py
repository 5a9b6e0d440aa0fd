"""Evaluation of a potential on labelled data: metrics, worst structures, overlap, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlip_autopipec.analysis.evaluation import (
    evaluate_potential,
    format_evaluation,
    shared_structures,
    write_evaluation,
)
from mlip_autopipec.config.config_model import ZBLBaseline
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.oracle.emt import label_with_emt

from ..conftest import cu_pt_structures


def _with_zbl(potential: Potential) -> Potential:
    """``potential`` without its active set and B-basis file, with a ZBL baseline."""
    baseline = ZBLBaseline(
        pair_cutoffs={"Cu-Cu": (1.0, 2.0), "Cu-Pt": (1.0, 2.0), "Pt-Pt": (1.0, 2.0)}
    )
    return potential.model_copy(
        update={"yaml_file": None, "active_set_file": None, "baseline": baseline}
    )


@pytest.mark.requires_pacemaker
def test_metrics_are_those_of_the_deployed_calculator(tmp_path: Path, tiny_cupt: Potential) -> None:
    potential = _with_zbl(tiny_cupt)
    dataset: Dataset = label_with_emt(cu_pt_structures(count=5, seed=3))
    evaluation = evaluate_potential(potential, dataset)

    calculator = potential.ase_calculator()
    energy_errors, force_errors, cu_errors = [], [], []
    for structure in dataset:
        atoms = structure.atoms.copy()
        atoms.calc = calculator
        energy_errors.append((atoms.get_potential_energy() - structure.energy) / len(atoms))
        error = atoms.get_forces() - structure.forces
        force_errors.append(error)
        cu_errors.append(error[atoms.numbers == 29])
    rmse = 1000 * np.sqrt(np.mean(np.vstack(force_errors) ** 2))
    assert evaluation.metrics.force_rmse_mev_per_angstrom == pytest.approx(rmse)
    assert evaluation.metrics.energy_mae_mev_per_atom == pytest.approx(
        1000 * np.mean(np.abs(energy_errors))
    )
    assert evaluation.force_by_element["Cu"]["rmse"] == pytest.approx(
        1000 * np.sqrt(np.mean(np.vstack(cu_errors) ** 2))
    )
    worst = evaluation.worst(2)
    assert worst[0].force_rmse_mev_per_angstrom >= worst[1].force_rmse_mev_per_angstrom
    assert worst[0].force_rmse_mev_per_angstrom == max(
        s.force_rmse_mev_per_angstrom for s in evaluation.structures
    )
    dimer = evaluation.structures[-1]
    assert dimer.name == "dimer" and dimer.shortest_distance == pytest.approx(2.3)
    assert dimer.max_gamma is None

    text = format_evaluation(evaluation, worst=2)
    assert "worst 2 structures" in text and worst[0].name in text
    out = write_evaluation(evaluation, tmp_path / "report")
    record = json.loads((out / "evaluation.json").read_text())
    assert record["metrics"]["n_structures"] == len(dataset)
    assert (out / "force_parity.png").read_bytes().startswith(b"\x89PNG")


def test_shared_structures_are_found_by_their_atoms_not_their_names() -> None:
    first = label_with_emt(cu_pt_structures(count=4, seed=1))
    renamed = cu_pt_structures(count=4, seed=1)[1:3]
    for atoms in renamed:
        atoms.info["name"] = "other"
    moved = cu_pt_structures(count=4, seed=1)[0]
    moved.positions[0, 0] += 0.01
    second = label_with_emt([moved, *renamed])
    assert shared_structures(first, second) == [(1, 1), (2, 2)]
