"""A real loop: EMT Cu, pacemaker fits, ASE MD with the ACE potential and its gamma, pace_select
on the unlabelled frames — two iterations after generation 0, tiny everywhere."""

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
        "max_iterations": 2,
        "max_selected_structures": 3,
        "initial_structures": {"copies_per_structure": 6},
    },
}


def test_two_iterations_of_a_real_loop(tmp_path: Path) -> None:
    start = bulk("Cu", "fcc", a=3.59, cubic=True).repeat((2, 1, 1))
    loop_dir = tmp_path / "loop"
    result = run_loop(parse_loop_config(CONFIG), [start], loop_dir)

    assert result.stop_reason in ("max_iterations", "converged")
    trained = sorted(loop_dir.glob("iter_*/train.json"))
    assert [path.parent.name for path in trained] == ["iter_000", "iter_001", "iter_002"]
    selected = json.loads((loop_dir / "iter_001" / "select.json").read_text())
    assert 1 <= selected["n_selected"] <= 3 < selected["n_candidates"]
    # each generation continues from the one before (train --previous)
    latest = Potential.load(loop_dir / "iter_002" / "train" / "run")
    assert latest.lineage is not None
    assert (
        Path(latest.lineage.parent).resolve() == (loop_dir / "iter_001" / "train" / "run").resolve()
    )
    labelled = sum(
        json.loads(path.read_text())["n_calls"] for path in loop_dir.glob("iter_*/label.json")
    )
    assert (
        result.oracle_calls
        == labelled
        == 7
        + selected["n_selected"]
        + json.loads((loop_dir / "iter_002" / "select.json").read_text())["n_selected"]
    )
    assert (loop_dir / "report" / "loop_report.html").exists()
    assert f"stopped ({result.stop_reason})" in loop_status(loop_dir)

    # a resumed finished loop does nothing again: no fit, no oracle call
    again = resume_loop(loop_dir)
    assert again.stop_reason == result.stop_reason and again.oracle_calls == result.oracle_calls
