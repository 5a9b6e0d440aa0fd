"""What a trainer asks to run (program steps) and how each ended, here and in a batch job."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.errors import TrainerError


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgramStep(_Record):
    """One program to run in the run directory: its argument list and the log file it writes."""

    name: str
    argv: list[str] = Field(description="the program (absolute path) and its arguments")
    log: str = Field(description="log file, relative to the run directory")
    required: bool = Field(True, description="a failure ends the run as failed")
    environment: dict[str, str] = Field(
        default_factory=dict, description="variables set for this program only"
    )
    title: str | None = Field(None, description="what the step is called in the progress display")


class StepOutcome(_Record):
    """How a step ended: exit code 0, or a failure with the runner's message and log tail."""

    name: str
    required: bool
    succeeded: bool
    exit_code: int | None = None
    message: str | None = None
    log_tail: list[str] = Field(default_factory=list)
    seconds: float | None = Field(None, description="wall time of the program, s")

    @classmethod
    def success(cls, step: ProgramStep, seconds: float | None = None) -> StepOutcome:
        return cls(
            name=step.name, required=step.required, succeeded=True, exit_code=0, seconds=seconds
        )

    @classmethod
    def failure(
        cls, step: ProgramStep, error: TrainerError, seconds: float | None = None
    ) -> StepOutcome:
        return cls(
            name=step.name,
            required=step.required,
            succeeded=False,
            exit_code=error.exit_code,
            message=error.message,
            log_tail=error.log_tail,
            seconds=seconds,
        )


class JobResult(_Record):
    """How the steps of a run ended (a batch job writes it when it ends, also when stopped by
    SIGTERM; it is absent if the job was killed)."""

    steps: list[StepOutcome]
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def failed_step(self) -> StepOutcome | None:
        """The first required step that did not succeed, or None."""
        return next((o for o in self.steps if o.required and not o.succeeded), None)

    def outcome(self, name: str) -> StepOutcome | None:
        """How the step of this name ended; None if it did not run."""
        return next((o for o in self.steps if o.name == name), None)
