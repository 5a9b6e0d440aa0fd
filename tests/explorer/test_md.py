"""The explorer: MD watched by gamma, its stops, candidates, resumption; a fake grade and EMT."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.io import read

from mlip_autopipec.config.explorer import ExplorerConfig
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import ConfigurationError, DatasetValidationError
from mlip_autopipec.explorer.engine import Engine
from mlip_autopipec.explorer.md import explore
from mlip_autopipec.explorer.trajectory import CANDIDATES, FRAMES, SUMMARY_JSON

from .conftest import cu_pt_cell


def _emt(potential: Potential) -> EMT:
    return EMT()


def _engine(
    gammas: Callable[[int], float], energies: Callable[[int], float] | None = None
) -> Engine:
    """EMT forces; the n-th grade (from 0) of each trajectory is gamma ``gammas(n)`` on atom 0."""

    def grader(potential: Potential) -> Callable[[Atoms], tuple[float, np.ndarray]]:
        calls = [0]

        def grade(atoms: Atoms) -> tuple[float, np.ndarray]:
            n = calls[0]
            calls[0] += 1
            gamma = np.full(len(atoms), 0.5)
            gamma[0] = gammas(n)
            energy = energies(n) if energies is not None else -3.0 * len(atoms)
            return energy, gamma

        return grade

    return Engine(calculator=_emt, grader=grader)


def _config(**settings: Any) -> ExplorerConfig:
    """Thresholds 5 / 25, which the fake grades below are built around."""
    defaults = {"temperatures_K": [500.0], "steps": 200, "check_every": 10, "workers": 1}
    return ExplorerConfig(**{**defaults, "gamma_lower": 5.0, "gamma_upper": 25.0, **settings})


def test_a_trajectory_stops_above_the_upper_threshold_with_its_candidates(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    # gamma 0, 2, 4, 6, ... at steps 0, 10, 20, 30, ...: candidates from 6 on, 26 stops.
    exploration = explore(
        tiny_cupt, [cu_pt_cell()], _config(), tmp_path, engine=_engine(lambda n: 2.0 * n)
    )
    (summary,) = exploration.trajectories
    assert summary.stop_reason == "gamma_upper"
    assert summary.steps_done == 130 and summary.steps_planned == 200
    assert summary.max_gamma == 26.0
    assert summary.n_checked_frames == 14 and summary.n_frames_above_lower == 11
    assert "max gamma 26.00 at step 130 exceeds gamma_upper = 25" in (summary.message or "")
    steps = [c.info["step"] for c in exploration.candidates]
    assert steps == list(range(30, 140, 10))
    last = exploration.candidates[-1]
    assert last.info["stop_reason"] == "gamma_upper" and last.info["max_gamma"] == 26.0
    assert last.info["condition"] == "T=500K" and last.info["trajectory"] == summary.id
    assert "stop_reason" not in exploration.candidates[0].info
    frames = read(tmp_path / summary.id / FRAMES, index=":")
    assert len(frames) == 14 and frames[3].arrays["gamma"][0] == 6.0
    assert not exploration.all_completed


def test_a_calm_trajectory_runs_its_full_length_without_candidates(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    exploration = explore(
        tiny_cupt, [cu_pt_cell()], _config(), tmp_path, engine=_engine(lambda n: 1.0)
    )
    (summary,) = exploration.trajectories
    assert summary.stop_reason == "completed" and summary.steps_done == 200
    assert summary.n_checked_frames == 21 and exploration.candidates == []
    assert exploration.all_completed and exploration.fraction_above_lower == 0.0
    # The atoms moved: EMT's MD ran.
    frames = read(tmp_path / summary.id / FRAMES, index=":")
    assert not np.allclose(frames[-1].positions, frames[0].positions)


def test_a_close_contact_stops_the_trajectory(tmp_path: Path, tiny_cupt: Potential) -> None:
    config = _config(min_distance_A=2.7)  # fcc neighbours at 3.7/sqrt(2) = 2.62 Å
    exploration = explore(
        tiny_cupt, [cu_pt_cell()], config, tmp_path, engine=_engine(lambda n: 1.0)
    )
    (summary,) = exploration.trajectories
    assert summary.stop_reason == "close_contact" and summary.steps_done == 0
    assert "Å apart at step 0, below the" in (summary.message or "")
    assert "floor 2.700 Å (explorer.min_distance_A)" in (summary.message or "")
    (candidate,) = exploration.candidates
    assert candidate.info["stop_reason"] == "close_contact"


def test_the_floor_is_a_fraction_of_the_shortest_reference_distance(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    # A reference that claims Cu-Pt pairs never come closer than 5.3 Å: the floor is 2.65 Å.
    exploration = explore(
        tiny_cupt,
        [cu_pt_cell()],
        _config(),
        tmp_path,
        reference_distances={("Cu", "Pt"): 5.3},
        engine=_engine(lambda n: 1.0),
    )
    message = exploration.trajectories[0].message or ""
    assert exploration.trajectories[0].stop_reason == "close_contact"
    assert "Cu-Pt floor 2.650 Å (0.5 x 5.300 Å, the shortest in the training data)" in message


def test_an_energy_jump_stops_the_trajectory(tmp_path: Path, tiny_cupt: Potential) -> None:
    engine = _engine(lambda n: 1.0, energies=lambda n: 0.0 if n < 5 else 100.0)
    exploration = explore(tiny_cupt, [cu_pt_cell()], _config(), tmp_path, engine=engine)
    (summary,) = exploration.trajectories
    assert summary.stop_reason == "energy_jump" and summary.steps_done == 50
    assert "changed by 12.500 eV/atom between steps 40 and 50" in (summary.message or "")
    assert exploration.candidates[-1].info["stop_reason"] == "energy_jump"


def test_a_trajectory_stops_at_its_nth_candidate(tmp_path: Path, tiny_cupt: Potential) -> None:
    # gamma 0, 2, 4, 6, ... at steps 0, 10, 20, 30, ...: candidates from 6 (step 30) on.
    config = _config(candidates_per_trajectory=3)
    exploration = explore(
        tiny_cupt, [cu_pt_cell()], config, tmp_path, engine=_engine(lambda n: 2.0 * n)
    )
    (summary,) = exploration.trajectories
    assert summary.stop_reason == "enough_candidates" and summary.steps_done == 50
    assert [c.info["step"] for c in exploration.candidates] == [30, 40, 50]
    assert exploration.candidates[-1].info["stop_reason"] == "enough_candidates"


def _falling(drop_per_atom: float) -> Callable[[int], float]:
    """Energies (eV) of the 8-atom cell: flat for three grades, then ``drop_per_atom`` lower."""
    return lambda n: -3.0 * 8 - (drop_per_atom * 8 if n >= 3 else 0.0)


def test_an_energy_drop_below_the_first_frame_stops_the_trajectory(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    engine = _engine(lambda n: 1.0, energies=_falling(0.15))
    exploration = explore(tiny_cupt, [cu_pt_cell()], _config(), tmp_path, engine=engine)
    (summary,) = exploration.trajectories
    assert summary.stop_reason == "energy_drop" and summary.steps_done == 30
    assert "fell 0.150 eV/atom below the first frame's at step 30" in (summary.message or "")
    assert exploration.candidates[-1].info["stop_reason"] == "energy_drop"


@pytest.mark.parametrize(("drop", "limit"), [(0.05, 0.1), (-0.5, 0.1), (0.15, 0.2), (5.0, None)])
def test_a_smaller_drop_a_rise_or_no_limit_lets_the_trajectory_run(
    tmp_path: Path, tiny_cupt: Potential, drop: float, limit: float | None
) -> None:
    engine = _engine(lambda n: 1.0, energies=_falling(drop))
    config = _config(max_energy_drop_eV_per_atom=limit, max_energy_jump_eV_per_atom=10.0)
    exploration = explore(tiny_cupt, [cu_pt_cell()], config, tmp_path, engine=engine)
    assert exploration.trajectories[0].stop_reason == "completed"


def test_a_failing_potential_ends_the_trajectory_as_an_error(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    def fails(n: int) -> float:
        if n == 2:
            raise RuntimeError("neighbour list overflow")
        return 1.0

    exploration = explore(tiny_cupt, [cu_pt_cell()], _config(), tmp_path, engine=_engine(fails))
    (summary,) = exploration.trajectories
    assert summary.stop_reason == "error" and summary.steps_done == 20
    assert "grading step 20 failed: RuntimeError: neighbour list overflow" in (
        summary.message or ""
    )


def test_npt_is_refused_for_a_structure_without_a_periodic_cell(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    cluster = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]])
    cluster.info["name"] = "dimer"
    with pytest.raises(ConfigurationError) as caught:
        explore(
            tiny_cupt, [cu_pt_cell(), cluster], _config(pressures_GPa=[0.0]), tmp_path,
            engine=_engine(lambda n: 1.0),
        )  # fmt: skip
    assert "explorer.pressures_GPa: structure 1 'dimer' is not periodic" in str(caught.value)
    assert not any(tmp_path.iterdir())


def test_npt_changes_the_volume_of_a_periodic_cell(tmp_path: Path, tiny_cupt: Potential) -> None:
    config = _config(pressures_GPa=[5.0], steps=100)
    exploration = explore(
        tiny_cupt, [cu_pt_cell()], config, tmp_path, engine=_engine(lambda n: 1.0)
    )
    (summary,) = exploration.trajectories
    assert summary.id == "s000_T500K_P5GPa_r0" and summary.pressure_GPa == 5.0
    frames = read(tmp_path / summary.id / FRAMES, index=":")
    assert frames[-1].get_volume() != pytest.approx(frames[0].get_volume(), rel=1e-6)


def test_an_unknown_element_is_refused_naming_the_structure(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    with pytest.raises(DatasetValidationError, match=r"structure 0: holds \['Au'\]"):
        explore(tiny_cupt, [bulk("Au")], _config(), tmp_path, engine=_engine(lambda n: 1.0))


def test_conditions_and_replicas_each_get_a_trajectory_and_a_seed(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    config = _config(temperatures_K=[300.0, 900.0], trajectories_per_condition=2, steps=20)
    exploration = explore(
        tiny_cupt, [cu_pt_cell(), cu_pt_cell(3.6)], config, tmp_path, engine=_engine(lambda n: 1.0)
    )
    ids = [t.id for t in exploration.trajectories]
    assert len(ids) == 8 and ids[:3] == ["s000_T300K_r0", "s000_T300K_r1", "s000_T900K_r0"]
    last_frames = [read(tmp_path / i / FRAMES, index=-1).positions for i in ids[:2]]
    assert not np.allclose(*last_frames)  # replicas differ
    explore(
        tiny_cupt, [cu_pt_cell(), cu_pt_cell(3.6)], config, tmp_path / "again",
        engine=_engine(lambda n: 1.0),
    )  # fmt: skip
    np.testing.assert_array_equal(
        read(tmp_path / "again" / ids[0] / FRAMES, index=-1).positions, last_frames[0]
    )  # the same seed, the same trajectory


def test_a_rerun_skips_finished_trajectories_and_reruns_unfinished_ones(
    tmp_path: Path, tiny_cupt: Potential
) -> None:
    structures = [cu_pt_cell(), cu_pt_cell(3.6)]
    first = explore(tiny_cupt, structures, _config(), tmp_path, engine=_engine(lambda n: 2.0 * n))
    # As if interrupted while the second trajectory ran: no summary, a partial frames file.
    second = tmp_path / first.trajectories[1].id
    (second / SUMMARY_JSON).unlink()
    (second / FRAMES).rename(second / "frames.partial.extxyz")

    calls: list[str] = []

    def counted(n: int) -> float:
        calls.append("x")
        return 2.0 * n

    seen: list[tuple[int, int]] = []
    resumed = explore(
        tiny_cupt, structures, _config(), tmp_path, engine=_engine(counted),
        progress=lambda done, total, summary: seen.append((done, total)),
    )  # fmt: skip
    assert len(calls) == 14  # only the second trajectory ran again
    assert seen == [(1, 2), (2, 2)]
    assert [t.model_dump(exclude={"wall_s"}) for t in resumed.trajectories] == [
        t.model_dump(exclude={"wall_s"}) for t in first.trajectories
    ]
    for one, other in zip(first.candidates, resumed.candidates, strict=True):
        np.testing.assert_array_equal(one.positions, other.positions)
    assert not (second / "frames.partial.extxyz").exists()
    # Another setting reruns everything.
    calls.clear()
    explore(tiny_cupt, structures, _config(gamma_lower=3.0), tmp_path, engine=_engine(counted))
    assert len(calls) == 28


def test_candidates_are_the_files_contents(tmp_path: Path, tiny_cupt: Potential) -> None:
    exploration = explore(
        tiny_cupt, [cu_pt_cell()], _config(), tmp_path, engine=_engine(lambda n: 2.0 * n)
    )
    written = read(tmp_path / exploration.trajectories[0].id / CANDIDATES, index=":")
    assert len(written) == len(exploration.candidates) == 11
    np.testing.assert_array_equal(written[-1].positions, exploration.candidates[-1].positions)


def test_a_molecule_is_explored_without_a_cell(tmp_path: Path, tiny_cupt: Potential) -> None:
    water = molecule("H2O")
    potential = tiny_cupt.model_copy(update={"elements": ("H", "O")})
    exploration = explore(
        potential, [water], _config(timestep_fs=0.5, steps=20), tmp_path,
        engine=_engine(lambda n: 1.0),
    )  # fmt: skip
    assert exploration.trajectories[0].stop_reason == "completed"


def test_a_potential_without_an_active_set_is_refused(tmp_path: Path, tiny_cupt: Potential) -> None:
    potential = tiny_cupt.model_copy(update={"active_set_file": None})
    with pytest.raises(ValueError, match="has no active set file"):
        explore(potential, [cu_pt_cell()], _config(), tmp_path)
    mock = tiny_cupt.model_copy(update={"trainer": "mock"})
    with pytest.raises(ValueError, match="mock placeholder"):
        explore(mock, [cu_pt_cell()], _config(), tmp_path)
