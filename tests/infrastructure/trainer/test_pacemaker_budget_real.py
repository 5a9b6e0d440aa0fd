"""A real pacemaker fit ended by its time budget: the callback stops it cleanly inside pacemaker."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.infrastructure.trainer import create_trainer, pacemaker_trainer
from mlip_autopipec.infrastructure.trainer.cost import budget
from mlip_autopipec.infrastructure.trainer.cost.budget import SizedFit, size_fit
from mlip_autopipec.oracle.emt import label_with_emt

from ...conftest import cu_pt_structures

pytestmark = [pytest.mark.slow, pytest.mark.requires_pacemaker]


def test_a_passed_deadline_ends_the_fit_with_the_potential_of_its_last_iteration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def deadline_now(*args: Any, **kwargs: Any) -> SizedFit:
        # The real sizing, with the optimiser's deadline moved to now: the first iteration
        # that ends passes it, however fast or slow this machine is.
        return dataclasses.replace(size_fit(*args, **kwargs), optimiser_time_s=0.0)

    monkeypatch.setattr(pacemaker_trainer, "size_fit", deadline_now)
    # The cost is modelled, not measured by a short pacemaker run of its own (~35 s of
    # start-up): the probe has its own real test (cost/test_probe.py).
    monkeypatch.setattr(budget, "PROBE_SHARE", 0.0)
    dataset = label_with_emt(cu_pt_structures(count=20, seed=3), source="tiny EMT Cu-Pt")
    config = parse_trainer_config(
        {
            "type": "pacemaker",
            "cutoff": 4.5,
            "ace_params": {"number_of_functions_per_element": 8},
            "fit": {"time_budget": "1h", "test_size": 0.2, "display_step": 5},
            "threads": 2,
            # One iteration leaves a potential that may fail the safety gate: not the point here.
            "accept_failed_checks": True,
        }
    )
    potential = create_trainer(config).train(dataset, tmp_path / "run")

    log = (tmp_path / "run" / "pacemaker.log").read_text()
    assert "time budget reached after iteration 0" in log
    assert potential.cost is not None and potential.cost.stopped_at_budget
    assert potential.cost.iterations == 1
    assert potential.cost.estimated_iterations > 100  # what the hour would have allowed
    # pacemaker went on as after a normal end: predictions, .yace, a deployable potential.
    assert potential.train_metrics is not None and potential.test_metrics is not None
    atoms = dataset[0].atoms.copy()
    atoms.calc = potential.ase_calculator()
    assert np.isfinite(atoms.get_potential_energy())
