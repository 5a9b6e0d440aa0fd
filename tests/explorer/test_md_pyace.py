"""The explorer with a real potential (pyace): the tiny Cu-Pt potential and its active set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from mlip_autopipec.analysis.extrapolation import extrapolation_grades
from mlip_autopipec.config.baseline import ZBLBaseline
from mlip_autopipec.config.explorer import ExplorerConfig
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.explorer.md import explore
from mlip_autopipec.explorer.trajectory import FRAMES
from mlip_autopipec.oracle.emt import label_with_emt

from .conftest import cu_pt_cell

pytestmark = pytest.mark.requires_pacemaker


def test_the_real_grade_stops_a_trajectory_outside_the_training_set(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    stretched = cu_pt_cell(4.0)  # gamma ~1.9 for this barely trained potential
    config = ExplorerConfig(
        temperatures_K=[300.0], steps=50, gamma_lower=1.2, gamma_upper=1.5, workers=1
    )
    exploration = explore(tiny_cupt, [stretched], config, tmp_path)
    (summary,) = exploration.trajectories
    assert summary.stop_reason == "gamma_upper" and summary.steps_done == 0
    (grade,) = extrapolation_grades(tiny_cupt, label_with_emt([stretched]))
    assert summary.max_gamma == pytest.approx(grade.max_gamma, rel=1e-9)
    assert exploration.candidates[0].info["max_gamma"] == pytest.approx(grade.max_gamma)


def test_real_trajectories_in_two_processes_match_one_process(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    settings = {
        "temperatures_K": [1000.0],
        "steps": 60,
        "gamma_lower": 0.85,
        "trajectories_per_condition": 2,
    }
    serial = explore(
        tiny_cupt, [cu_pt_cell(3.7)], ExplorerConfig(**settings, workers=1), tmp_path / "one"
    )
    parallel = explore(
        tiny_cupt, [cu_pt_cell(3.7)], ExplorerConfig(**settings, workers=2), tmp_path / "two"
    )
    assert [t.stop_reason for t in serial.trajectories] == ["completed", "completed"]
    for one, two in zip(serial.trajectories, parallel.trajectories, strict=True):
        assert one.model_dump(exclude={"wall_s"}) == two.model_dump(exclude={"wall_s"})
        frames_one = read(tmp_path / "one" / one.id / FRAMES, index=":")
        frames_two = read(tmp_path / "two" / two.id / FRAMES, index=":")
        np.testing.assert_array_equal(frames_one[-1].positions, frames_two[-1].positions)
    # The candidates are the frames graded above gamma_lower, with their real grade.
    above = [c for c in serial.candidates if c.info["max_gamma"] > 0.85]
    assert (
        len(above)
        == len(serial.candidates)
        == sum(t.n_frames_above_lower for t in serial.trajectories)
    )
    assert serial.candidates  # at 1000 K this potential reaches gamma ~0.9-1
    regraded = extrapolation_grades(tiny_cupt, label_with_emt(serial.candidates[:3]))
    for grade, candidate in zip(regraded, serial.candidates, strict=False):
        assert grade.max_gamma == pytest.approx(candidate.info["max_gamma"], rel=1e-5)


def test_real_npt_runs_with_a_baseline(tmp_path: Path, tiny_cupt: Potential) -> None:
    baseline = ZBLBaseline(
        pair_cutoffs={"Cu-Cu": (1.0, 2.0), "Cu-Pt": (1.0, 2.0), "Pt-Pt": (1.0, 2.0)}
    )
    potential = tiny_cupt.model_copy(update={"baseline": baseline})
    config = ExplorerConfig(temperatures_K=[600.0], pressures_GPa=[1.0], steps=50, workers=1)
    exploration = explore(potential, [cu_pt_cell(3.7)], config, tmp_path)
    (summary,) = exploration.trajectories
    assert summary.stop_reason == "completed" and summary.steps_done == 50
    frames = read(tmp_path / summary.id / FRAMES, index=":")
    assert frames[-1].get_volume() != pytest.approx(frames[0].get_volume(), rel=1e-6)
