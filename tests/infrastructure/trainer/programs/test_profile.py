"""The program profile: resolved programs, environment, logs, progress, and the steps it runs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlip_autopipec.cli.progress import ProgressReporter
from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.infrastructure.rundir.files import JOB_STEPS_JSON
from mlip_autopipec.infrastructure.trainer.batch.node import JobSteps, run_steps
from mlip_autopipec.infrastructure.trainer.programs.profile import FIT_PROGRAMS, ProgramProfile
from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink
from mlip_autopipec.infrastructure.trainer.programs.steps import JobResult


class RecordingSink:
    """A ProgressSink that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def __call__(self, line: str) -> None:
        self.events.append(f"line {line}")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.events.append(f"start {name}")
        try:
            yield
        finally:
            self.events.append(f"end {name}")

    def plan_iterations(self, iterations: int) -> None:
        self.events.append(f"plan {iterations}")


def _shell_profile(**fields: object) -> ProgramProfile:
    """A profile whose "pacemaker" and "pace_activeset" are /bin/sh: harmless real programs."""
    executables = {"pacemaker": "/bin/sh", "pace_activeset": "/bin/sh"}
    return ProgramProfile(executables=executables, **fields)  # type: ignore[arg-type]


def test_the_profile_of_a_config_resolves_its_programs_and_environment(
    fake_pacemaker: Path,
) -> None:
    config = parse_trainer_config({"type": "pacemaker", "cutoff": 5.0, "threads": 2})
    profile = ProgramProfile.for_config(config)
    assert profile.executable("pacemaker") == str(fake_pacemaker / "pacemaker")
    assert set(profile.executables) == set(FIT_PROGRAMS)
    assert profile.environment["OMP_NUM_THREADS"] == "2"
    assert profile.time_limit_s is None
    with pytest.raises(ValueError, match="pace_select"):  # not asked for: not resolved
        profile.executable("pace_select")


def test_a_missing_program_is_named_with_how_to_install_it() -> None:
    config = parse_trainer_config(
        {"type": "pacemaker", "cutoff": 5.0, "executables": {"pace_select": "no_pace_select_xyz"}}
    )
    with pytest.raises(TrainerError, match=r"no_pace_select_xyz.*pip install"):
        ProgramProfile.for_config(config, programs=["pace_select"])


def test_steps_get_the_environment_their_log_and_the_progress_sink(tmp_path: Path) -> None:
    sink = RecordingSink()
    profile = _shell_profile(environment={"OMP_NUM_THREADS": "3"}, progress=sink)
    fit = profile.program_step("pacemaker", ["-c", 'echo "threads $OMP_NUM_THREADS x=$X"'])
    fit = fit.model_copy(update={"environment": {"X": "1"}, "title": "fitting"})
    after = profile.program_step("pace_activeset", ["-c", 'echo "x=$X"'], required=False)

    result = profile.run_steps([fit, after], tmp_path)

    assert [(o.name, o.succeeded) for o in result.steps] == [
        ("pacemaker", True),
        ("pace_activeset", True),
    ]
    assert all(o.seconds is not None and o.seconds >= 0 for o in result.steps)
    assert "threads 3 x=1" in (tmp_path / "pacemaker.log").read_text()
    assert "x=\n" in (tmp_path / "pace_activeset.log").read_text()  # X was pacemaker's only
    assert sink.events == [
        "start fitting",
        "line threads 3 x=1",
        "end fitting",
        "start pace_activeset",
        "line x=",
        "end pace_activeset",
    ]


def test_a_failed_required_step_raises_and_an_optional_one_is_recorded(tmp_path: Path) -> None:
    profile = _shell_profile()
    optional = profile.program_step("pace_activeset", ["-c", "echo few; exit 4"], required=False)
    result = profile.run_steps([optional], tmp_path)
    outcome = result.outcome("pace_activeset")
    assert outcome is not None and not outcome.succeeded and outcome.exit_code == 4
    assert outcome.log_tail == ["few"] and result.failed_step is None

    required = profile.program_step("pacemaker", ["-c", "echo bad input; exit 3"])
    with pytest.raises(TrainerError) as caught:
        profile.run_steps([required, optional], tmp_path)
    assert caught.value.exit_code == 3 and caught.value.command == required.argv
    assert caught.value.log_path == tmp_path / "pacemaker.log"
    assert "bad input" in caught.value.log_tail


def test_a_batch_job_runs_the_same_steps_to_the_same_result(tmp_path: Path) -> None:
    profile = _shell_profile(time_limit_s=30.0)
    steps = [
        profile.program_step("pacemaker", ["-c", "echo fitted"]),
        profile.program_step("pace_activeset", ["-c", "exit 2"], required=False),
    ]
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    local = profile.run_steps(steps, here)
    job_steps = JobSteps(steps=steps, time_limit_s=profile.time_limit_s)
    (there / JOB_STEPS_JSON).write_text(job_steps.model_dump_json())
    job = run_steps(there)

    def ends(result: JobResult) -> list[tuple[str, bool, int | None]]:
        return [(o.name, o.succeeded, o.exit_code) for o in result.steps]

    assert ends(job) == ends(local) == [("pacemaker", True, 0), ("pace_activeset", False, 2)]
    for run_dir in (here, there):
        assert "\nfitted\n" in (run_dir / "pacemaker.log").read_text()


def test_the_progress_display_is_a_sink_and_learns_the_planned_iterations(
    tmp_path: Path,
) -> None:
    stream = io.StringIO()
    display = ProgressReporter(10, stream, interactive=False)
    sink: ProgressSink = display  # checked by mypy: the display implements the protocol
    profile = _shell_profile(progress=sink)
    profile.plan_iterations(250)
    assert display.maxiter == 250
    profile.run_steps([profile.program_step("pacemaker", ["-c", "true"], title="fit")], tmp_path)
    assert stream.getvalue().splitlines() == ["fit ...", "fit done in 0s"]
    ProgramProfile().plan_iterations(5)  # nobody follows: nothing to tell
