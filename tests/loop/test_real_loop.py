"""A real loop: EMT Cu, pacemaker fits, ASE MD with the ACE potential and its gamma, pace_select
on the unlabelled frames. Two iterations, tiny everywhere: generation 0 from oracle labels;
iteration 1 explores with it, selects, labels, trains generation 1 (an upfit, or a fresh fit
when the new frames come closer than generation 0's); iteration 2 explores with generation 1
and stops there (max_iterations: 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ase.build import bulk

from mlip_autopipec.config.loop import parse_loop_config
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.loop import loop_status, resume_loop, run_loop

pytestmark = [pytest.mark.slow, pytest.mark.requires_pacemaker]

CONFIG = {
    "trainer": {
        "type": "pacemaker",
        "cutoff": 4.5,
        "ace_params": {"number_of_functions_per_element": 10},
        "fit": {"maxiter": 40, "upfit_maxiter": 20, "test_size": 0.2},
    },
    "oracle": {"calculator": "ase.calculators.emt.EMT", "workers": 1},
    # Low thresholds: a tiny potential certainly extrapolates in 1200 K MD, so both iterations
    # have candidates to select from.
    "explorer": {
        "temperatures_K": [1200],
        "steps": 200,
        "timestep_fs": 2.0,
        "check_every": 10,
        "workers": 1,
        "gamma_lower": 1.5,
        "gamma_upper": 50,
    },
    "loop": {
        "max_iterations": 1,
        "max_selected_structures": 3,
        "initial_structures": {"copies_per_structure": 6},
    },
}


def test_two_iterations_of_a_real_loop(tmp_path: Path) -> None:
    start = bulk("Cu", "fcc", a=3.59, cubic=True).repeat((2, 1, 1))
    loop_dir = tmp_path / "loop"
    result = run_loop(parse_loop_config(CONFIG), [start], loop_dir)

    assert result.stop_reason in ("max_iterations", "converged")
    trained = sorted(path.parent.name for path in loop_dir.glob("iter_*/train.json"))
    assert trained == ["iter_000", "iter_001"]
    assert (loop_dir / "iter_002" / "explore.json").exists()
    selected = json.loads((loop_dir / "iter_001" / "select.json").read_text())
    assert 1 <= selected["n_selected"] <= 3 < selected["n_candidates"]
    # generation 1 continues from generation 0 (train --previous)
    latest = Potential.load(loop_dir / "iter_001" / "train" / "run")
    assert latest.lineage is not None and latest.lineage.generation == 1
    parent = (loop_dir / "iter_000" / "train" / "run").resolve()
    assert Path(latest.lineage.parent).resolve() == parent
    labels = [json.loads(path.read_text()) for path in loop_dir.glob("iter_*/label.json")]
    assert result.oracle_calls == sum(label["n_calls"] for label in labels)
    assert result.oracle_calls == 7 + selected["n_selected"]
    assert (loop_dir / "report" / "loop_report.html").exists()
    assert f"stopped ({result.stop_reason})" in loop_status(loop_dir)

    # a resumed finished loop does nothing again: no step is redone (each record unchanged)
    records = {path: path.read_text() for path in loop_dir.glob("iter_*/*.json")}
    again = resume_loop(loop_dir)
    assert again.stop_reason == result.stop_reason and again.oracle_calls == result.oracle_calls
    assert {path: path.read_text() for path in loop_dir.glob("iter_*/*.json")} == records
