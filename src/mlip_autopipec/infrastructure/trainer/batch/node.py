"""What a batch job runs on the compute node: the fit's programs, one after the other.

``python -m mlip_autopipec.infrastructure.trainer.batch.entry RUN_DIR`` reads the steps the
trainer wrote (``job_steps.json``: argument lists, log files), runs each with the same runner
as a local fit (log file, time limit, no orphaned processes) and records how each ended in
``job_result.json``. Its exit code is 0 when every required step succeeded.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.rundir.files import JOB_RESULT_JSON, JOB_STEPS_JSON
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile
from mlip_autopipec.infrastructure.trainer.programs.steps import JobResult, ProgramStep, StepOutcome


class JobSteps(BaseModel):
    """What the job runs: its steps in order, and the time limit of each program (s)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[ProgramStep]
    time_limit_s: float | None = None


def run_steps(run_dir: Path) -> JobResult:
    """Run the steps of ``run_dir/job_steps.json`` in ``run_dir``; the result is also saved."""
    plan = JobSteps.model_validate_json((run_dir / JOB_STEPS_JSON).read_text())
    # The job's environment (threads, GPUs) was set by the scheduler from the submission.
    profile = ProgramProfile(time_limit_s=plan.time_limit_s)
    outcomes: list[StepOutcome] = []
    try:
        for step in plan.steps:
            outcome, _ = profile.try_step(step, run_dir)
            outcomes.append(outcome)
            if step.required and not outcome.succeeded:
                break
    except (KeyboardInterrupt, SystemExit) as stop:  # SIGTERM from the scheduler, SIGINT
        name = plan.steps[len(outcomes)].name if len(outcomes) < len(plan.steps) else "job"
        outcomes.append(
            StepOutcome(
                name=name,
                required=True,
                succeeded=False,
                message="stopped by a signal (the scheduler ended the job, e.g. its time limit)",
            )
        )
        _save(run_dir, JobResult(steps=outcomes))
        raise SystemExit(getattr(stop, "code", None) or 143) from None
    result = JobResult(steps=outcomes)
    _save(run_dir, result)
    return result


def _save(run_dir: Path, result: JobResult) -> None:
    write_text_atomic(run_dir / JOB_RESULT_JSON, result.model_dump_json(indent=2) + "\n")
