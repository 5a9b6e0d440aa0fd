"""What a batch job runs on the compute node: the fit's programs, one after the other.

``python -m mlip_autopipec.infrastructure.trainer.job_entry RUN_DIR`` reads the steps the
trainer wrote (``job_steps.json``: argument lists, log files), runs each with the same runner
as a local fit (log file, time limit, no orphaned processes) and records how each ended in
``job_result.json``. Its exit code is 0 when every required step succeeded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.errors import TrainerError
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.trainer.runner import run_program

JOB_STEPS_JSON = "job_steps.json"
JOB_RESULT_JSON = "job_result.json"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgramStep(_Record):
    """One program of the job: its argument list and the log file it writes in the run dir."""

    name: str
    argv: list[str] = Field(description="the program (absolute path) and its arguments")
    log: str = Field(description="log file, relative to the run directory")
    required: bool = Field(True, description="a failure ends the job as failed")


class JobSteps(_Record):
    """What the job runs: its steps in order, and the time limit of each program (s)."""

    steps: list[ProgramStep]
    time_limit_s: float | None = None


class StepOutcome(_Record):
    """How a step ended: exit code 0, or a failure with the runner's message and log tail."""

    name: str
    required: bool
    succeeded: bool
    exit_code: int | None = None
    message: str | None = None
    log_tail: list[str] = Field(default_factory=list)


class JobResult(_Record):
    """Written by the job when it ends (also when stopped by SIGTERM); absent if it was killed."""

    steps: list[StepOutcome]
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def failed_step(self) -> StepOutcome | None:
        """The first required step that did not succeed, or None."""
        return next((o for o in self.steps if o.required and not o.succeeded), None)

    def outcome(self, name: str) -> StepOutcome | None:
        """How the step of this name ended; None if it did not run."""
        return next((o for o in self.steps if o.name == name), None)


def run_steps(run_dir: Path) -> JobResult:
    """Run the steps of ``run_dir/job_steps.json`` in ``run_dir``; the result is also saved."""
    plan = JobSteps.model_validate_json((run_dir / JOB_STEPS_JSON).read_text())
    outcomes: list[StepOutcome] = []
    try:
        for step in plan.steps:
            try:
                run_program(
                    step.argv,
                    workdir=run_dir,
                    log_path=run_dir / step.log,
                    time_limit_s=plan.time_limit_s,
                )
            except TrainerError as error:
                outcomes.append(
                    StepOutcome(
                        name=step.name,
                        required=step.required,
                        succeeded=False,
                        exit_code=error.exit_code,
                        message=error.message,
                        log_tail=error.log_tail,
                    )
                )
                if step.required:
                    break
            else:
                outcomes.append(
                    StepOutcome(name=step.name, required=step.required, succeeded=True, exit_code=0)
                )
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
