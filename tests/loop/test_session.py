"""The loop's flow with fake parts: each stop criterion, resumption after an interruption at each
step, the directory's safety."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ase import Atoms

from mlip_autopipec.errors import ConfigurationError, FailedChecksError, OutputError, TrainerError
from mlip_autopipec.infrastructure.rundir.claim import claim_run_directory, read_manifest
from mlip_autopipec.loop import resume_loop, run_loop
from mlip_autopipec.loop.records import LOOP_JSON
from mlip_autopipec.oracle.emt import label_with_emt

#: Generation 0 from oracle labels: the starting structure and 2 rattled copies.
INITIAL_LABELS = 3
#: Candidates of one exploration with gamma above gamma_lower: 4 per temperature, 2 temperatures.
CANDIDATES = 8


def test_converged_when_md_no_longer_extrapolates(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes(gammas=[30.0, 12.0, 4.0])
    result = run_loop(loop_config(), start, tmp_path / "loop", parts=fake.parts())
    assert result.stop_reason == "converged"
    # generations 0, 1, 2 trained; generation 2's MD converged (iteration 3 explored only)
    assert len(fake.trained) == 3
    assert fake.calls[(3, "explore")] == 1 and fake.calls[(3, "select")] == 0
    assert fake.oracle_calls == result.oracle_calls == INITIAL_LABELS + 2 * CANDIDATES
    record = json.loads((tmp_path / "loop" / LOOP_JSON).read_text())
    assert record["stop_reason"] == "converged"
    assert result.last_generation == tmp_path / "loop" / "iter_002" / "train" / "run"


def test_converged_says_when_the_last_fit_had_not_converged(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    """MD converged with generation 2, whose loss was still falling: the stop says so."""
    note = "the fit had not converged: the train loss was still falling by 11%"
    for still_improving, expected in ((None, False), (note, True)):
        fake = fakes(gammas=[30.0, 12.0, 4.0], still_improving=still_improving)
        loop_dir = tmp_path / f"loop_{expected}"
        run_loop(loop_config(), start, loop_dir, parts=fake.parts())
        record = json.loads((loop_dir / LOOP_JSON).read_text())
        assert record["stop_reason"] == "converged"
        assert ("Generation 2 may be less accurate" in record["stop_message"]) is expected
        assert (note in record["stop_message"]) is expected


def test_each_generation_continues_from_the_last(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes(gammas=[30.0, 30.0, 1.0])
    run_loop(
        loop_config(generation_time_budget="2min"), start, tmp_path / "loop", parts=fake.parts()
    )
    previous = [entry["previous"] for entry in fake.trained]
    assert previous == [None, fake.trained[0]["run_dir"], fake.trained[1]["run_dir"]]
    assert [entry["n_structures"] for entry in fake.trained] == [INITIAL_LABELS] + [CANDIDATES] * 2
    assert {entry["time_budget"] for entry in fake.trained} == {120.0}


def test_not_converged_while_a_trajectory_stops_early(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    """gamma above gamma_upper ends a trajectory early: even with no frame counted above
    gamma_lower (converged_fraction 1 would allow all), the loop goes on."""
    fake = fakes(gammas=[30.0])
    result = run_loop(
        loop_config(max_iterations=2, converged_fraction=0.99),
        start,
        tmp_path / "loop",
        parts=fake.parts(),
    )
    assert result.stop_reason == "max_iterations"


def test_converged_fraction_allows_some_candidates(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    """4 of 20 checked frames above gamma_lower, every trajectory full length: converged at a
    fraction of 0.2, not at 0.1."""
    for fraction, expected in ((0.2, "converged"), (0.1, "max_iterations")):
        fake = fakes(gammas=[12.0])
        result = run_loop(
            loop_config(max_iterations=1, converged_fraction=fraction),
            start,
            tmp_path / f"loop_{fraction}",
            parts=fake.parts(),
        )
        assert result.stop_reason == expected


def test_stops_at_max_iterations(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes(gammas=[30.0])
    result = run_loop(loop_config(max_iterations=2), start, tmp_path / "loop", parts=fake.parts())
    assert result.stop_reason == "max_iterations"
    assert len(fake.trained) == 3
    assert fake.calls[(3, "explore")] == 1  # the last generation explored, not trained on
    assert fake.calls[(3, "select")] == 0


def test_stops_at_max_oracle_calls_without_passing_it(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    cap = INITIAL_LABELS + CANDIDATES + 3
    fake = fakes(gammas=[30.0])
    result = run_loop(
        loop_config(max_oracle_calls=cap), start, tmp_path / "loop", parts=fake.parts()
    )
    assert result.stop_reason == "max_oracle_calls"
    assert fake.oracle_calls == result.oracle_calls == cap
    assert [entry["n_structures"] for entry in fake.trained][1:] == [CANDIDATES, 3]


def test_selection_is_capped_per_iteration(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes(gammas=[30.0])
    run_loop(
        loop_config(max_iterations=1, max_selected_structures=5),
        start,
        tmp_path / "loop",
        parts=fake.parts(),
    )
    assert fake.trained[1]["n_structures"] == 5


def test_stops_at_max_wall_time(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    """A cap below the wall time of generation 0 alone: no iteration starts."""
    fake = fakes(gammas=[30.0])
    result = run_loop(loop_config(max_wall_time=1e-9), start, tmp_path / "loop", parts=fake.parts())
    assert result.stop_reason == "max_wall_time"
    assert len(fake.trained) == 1 and fake.calls[(1, "explore")] == 0


def test_stops_when_the_selection_keeps_nothing(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes(gammas=[30.0], select_none=True)
    result = run_loop(loop_config(), start, tmp_path / "loop", parts=fake.parts())
    assert result.stop_reason == "nothing_selected"
    assert len(fake.trained) == 1


def test_generation_zero_from_data_calls_no_oracle(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes(gammas=[30.0, 1.0])
    data = label_with_emt([atoms for atoms in start * 2], source="given")
    test_data = label_with_emt(start, source="held out")
    result = run_loop(
        loop_config(), start, tmp_path / "loop", data=data, test_data=test_data, parts=fake.parts()
    )
    assert fake.oracle_calls == result.oracle_calls == CANDIDATES
    assert fake.trained[0]["n_structures"] == 2
    record = json.loads((tmp_path / "loop" / "iter_001" / "train.json").read_text())
    assert record["test_data_force_rmse_mev"] == 80.0


def test_data_read_on_resume_carries_the_fits_neighbour_searches(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    """Generation 0's fit reuses the searches made when the data copy was checked: one search
    per structure, not two."""
    fake = fakes(gammas=[1.0])
    fake.interrupt_at = (0, "train")
    loop_dir = tmp_path / "loop"
    data = label_with_emt(start * 2, source="given")
    with pytest.raises(KeyboardInterrupt):
        run_loop(loop_config(), start, loop_dir, data=data, parts=fake.parts())

    resume_loop(loop_dir, parts=fake.parts())

    table = fake.trained[0]["neighbours"]
    assert table is not None and table.cutoff == loop_config().trainer.cutoff
    assert len(table) == 1  # the one distinct structure, searched while the copy was checked


# -- resumption -------------------------------------------------------------------------------

STAGES = [
    (0, "label"),
    (0, "train"),
    (1, "explore"),
    (1, "select"),
    (1, "label"),
    (1, "train"),
    (2, "explore"),
]


def _reference_run(tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]) -> Any:
    fake = fakes(gammas=[30.0, 12.0, 1.0])
    run_loop(loop_config(), start, tmp_path / "reference", parts=fake.parts())
    return fake


@pytest.mark.parametrize("stage", STAGES, ids=lambda stage: f"iter{stage[0]}-{stage[1]}")
def test_resume_after_an_interruption_redoes_only_the_interrupted_step(
    tmp_path: Path, stage: tuple[int, str], fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    reference = _reference_run(tmp_path, fakes, loop_config, start)
    fake = fakes(gammas=[30.0, 12.0, 1.0])
    fake.interrupt_at = stage
    loop_dir = tmp_path / "loop"
    with pytest.raises(KeyboardInterrupt):
        run_loop(loop_config(), start, loop_dir, parts=fake.parts())
    assert read_manifest(loop_dir)["status"] == "interrupted"  # type: ignore[index]
    assert json.loads((loop_dir / LOOP_JSON).read_text())["stop_reason"] is None

    result = resume_loop(loop_dir, parts=fake.parts())

    assert result.stop_reason == "converged"
    expected = reference.calls.copy()
    expected[stage] += 1  # the interrupted step, and it alone, ran twice
    assert fake.calls == expected
    assert fake.oracle_calls == reference.oracle_calls  # the cache served the redone labels
    assert len(fake.cache_dirs) == 1
    assert read_manifest(loop_dir)["status"] == "finished"  # type: ignore[index]


def test_resume_of_a_stopped_loop_with_a_raised_cap_goes_on(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes(gammas=[30.0, 30.0, 1.0])
    loop_dir = tmp_path / "loop"
    assert (
        run_loop(loop_config(max_iterations=1), start, loop_dir, parts=fake.parts()).stop_reason
        == "max_iterations"
    )
    trained = len(fake.trained)
    assert resume_loop(loop_dir, parts=fake.parts()).stop_reason == "max_iterations"
    assert len(fake.trained) == trained  # nothing redone
    result = resume_loop(loop_dir, config=loop_config(max_iterations=5), parts=fake.parts())
    assert result.stop_reason == "converged"
    assert len(fake.trained) == 3


def test_resume_refuses_a_changed_trainer_oracle_or_explorer(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes(gammas=[30.0])
    loop_dir = tmp_path / "loop"
    run_loop(loop_config(max_iterations=1), start, loop_dir, parts=fake.parts())
    changed = loop_config(max_iterations=1)
    changed.explorer.steps = 5
    with pytest.raises(ConfigurationError, match="explorer"):
        resume_loop(loop_dir, config=changed, parts=fake.parts())


# -- the directory ----------------------------------------------------------------------------


def test_a_foreign_directory_is_refused_untouched(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(OutputError, match="not made by mlip-autopipec"):
        run_loop(loop_config(), start, out, parts=fakes().parts())
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_an_existing_loop_is_not_started_again(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    loop_dir = tmp_path / "loop"
    run_loop(loop_config(max_iterations=1), start, loop_dir, parts=fakes().parts())
    with pytest.raises(OutputError, match="--resume"):
        run_loop(loop_config(), start, loop_dir, parts=fakes().parts())


def test_a_loop_in_use_is_refused(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    loop_dir = tmp_path / "loop"
    run_loop(loop_config(max_iterations=1), start, loop_dir, parts=fakes().parts())
    with claim_run_directory(loop_dir), pytest.raises(OutputError, match="in use"):
        resume_loop(loop_dir, parts=fakes().parts())


def test_resume_of_a_directory_that_holds_no_loop(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    with claim_run_directory(tmp_path / "run"):
        pass
    with pytest.raises(OutputError, match="not the directory of a loop"):
        resume_loop(tmp_path / "run", parts=fakes().parts())


def test_no_structures_is_a_clear_error(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    with pytest.raises(ConfigurationError, match="--structures"):
        run_loop(loop_config(), [], tmp_path / "loop", parts=fakes().parts())
    assert not (tmp_path / "loop").exists()


def test_a_generation_trained_before_a_kill_is_not_trained_again(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    """Killed between the fit's end (potential.json written) and the step's record: the
    resumed loop takes the finished run as it is."""
    fake = fakes(gammas=[30.0, 1.0])
    loop_dir = tmp_path / "loop"
    run_loop(loop_config(), start, loop_dir, parts=fake.parts())
    (loop_dir / "iter_001" / "train.json").unlink()
    (loop_dir / "iter_002").rename(tmp_path / "iter_002_away")  # what came after it
    trained = len(fake.trained)
    assert resume_loop(loop_dir, parts=fake.parts()).stop_reason == "converged"
    assert len(fake.trained) == trained
    assert (loop_dir / "iter_001" / "train.json").exists()


def test_a_generation_that_failed_its_checks_stops_a_resumed_loop_too(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    """The trainer raises FailedChecksError after writing the potential (marked failed); the
    resumed loop must not go on from it silently."""
    fake = fakes(gammas=[30.0, 1.0])
    loop_dir = tmp_path / "loop"
    run_loop(loop_config(), start, loop_dir, parts=fake.parts())
    (loop_dir / "iter_001" / "train.json").unlink()
    (loop_dir / "iter_002").rename(tmp_path / "iter_002_away")
    record = loop_dir / "iter_001" / "train" / "run" / "potential.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps(data | {"checks_passed": False}))
    with pytest.raises(FailedChecksError, match="accept_failed_checks"):
        resume_loop(loop_dir, parts=fake.parts())


def test_an_interrupted_session_after_a_stop_forgets_the_old_stop(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes(gammas=[30.0, 30.0, 1.0])
    loop_dir = tmp_path / "loop"
    run_loop(loop_config(max_iterations=1), start, loop_dir, parts=fake.parts())
    fake.interrupt_at = (2, "label")
    with pytest.raises(KeyboardInterrupt):
        resume_loop(loop_dir, config=loop_config(max_iterations=5), parts=fake.parts())
    assert json.loads((loop_dir / LOOP_JSON).read_text())["stop_reason"] is None


KILLED_LOOP = """
import importlib.util, os, signal, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("loop_fakes", sys.argv[1])
fakes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fakes)
fake = fakes.FakeParts(gammas=[30.0, 12.0, 1.0])
done = fake._done
def kill_in_label(iteration, step):
    done(iteration, step)
    if (iteration, step) == (1, "label"):
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no handler, no record, no manifest update
fake._done = kill_in_label
from mlip_autopipec.loop import run_loop
run_loop(fakes.loop_config(), fakes.start_structures(), Path(sys.argv[2]), parts=fake.parts())
"""


def test_resume_after_kill_9(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    """A loop killed with SIGKILL during a step: the lock is gone with the process, the
    manifest still says running; the resumed loop redoes that step alone."""
    import signal
    import subprocess
    import sys

    loop_dir = tmp_path / "loop"
    conftest = Path(__file__).with_name("conftest.py")
    process = subprocess.run(
        [sys.executable, "-c", KILLED_LOOP, str(conftest), str(loop_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert read_manifest(loop_dir)["status"] == "running"  # type: ignore[index]
    assert not (loop_dir / "iter_001" / "label.json").exists()

    fake = fakes(gammas=[30.0, 12.0, 1.0])
    result = resume_loop(loop_dir, parts=fake.parts())
    assert result.stop_reason == "converged"
    # iteration 0 and iteration 1's explore and select were done before the kill
    assert fake.calls[(0, "label")] == fake.calls[(0, "train")] == 0
    assert fake.calls[(1, "explore")] == fake.calls[(1, "select")] == 0
    assert fake.calls[(1, "label")] == 1
    # the killed step's labels came from the cache: this session paid for iteration 2's alone
    assert fake.oracle_calls == CANDIDATES
    # (and the count of the loop misses the killed session's calls: they were never recorded)
    assert result.oracle_calls == INITIAL_LABELS + CANDIDATES


def test_a_generation_without_an_active_set_stops_the_loop_and_says_why(
    tmp_path: Path, fakes: Any, loop_config: Any, start: list[Atoms]
) -> None:
    fake = fakes()
    trained = fake.train

    def without_active_set(*arguments: Any) -> Any:
        potential = trained(*arguments).model_copy(update={"trainer": "pacemaker"})
        potential.save()
        return potential

    fake.train = without_active_set
    with pytest.raises(TrainerError, match=r"generation 0 .* has no active set"):
        run_loop(loop_config(), start, tmp_path / "loop", parts=fake.parts())
    assert fake.calls[(1, "explore")] == 0  # no MD without a grade
