"""Where the fit runs: on this machine (default) or as a batch job of a cluster's scheduler."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

from mlip_autopipec.config.durations import SCHEDULER_CLOCK, parse_duration

#: A queue or account name: one word the scheduler takes as it is (no space, quote, $ or newline).
_NAME = re.compile(r"[A-Za-z0-9_.+@:-]+")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LocalExecution(_Strict):
    """The programs run as child processes of mlip-autopipec, on this machine."""

    type: Literal["local"] = Field("local", description="run on this machine")


class BatchExecution(_Strict):
    """The compute part of a fit (pacemaker, then pace_activeset) runs as one batch job.

    The run directory must be on a filesystem that the compute nodes share with this machine,
    and this Python environment must be reachable from them at the same path.
    """

    queue: str | None = Field(None, description="queue (SLURM partition); None: the default one")
    account: str | None = Field(None, description="account/project charged for the job")
    time_limit: str = Field(
        description=(
            "wall-time limit of the job, [days-]hours:minutes:seconds (e.g. '12:00:00'); the "
            "scheduler kills the job when it is exceeded"
        )
    )
    nodes: PositiveInt = Field(1, description="nodes (pacemaker itself uses one)")
    cpus: PositiveInt = Field(
        1, description="CPU cores for the job; pacemaker's threads unless trainer.threads is set"
    )
    gpus: NonNegativeInt = Field(
        0, description="GPUs for the job, visible to pacemaker (TensorFlow); 0: CPU only"
    )
    setup: list[str] = Field(
        default_factory=list,
        description=(
            "shell lines run in the job before the programs, e.g. 'module load cuda/12' (the "
            "only shell text of the job: the programs themselves run from argument lists)"
        ),
    )
    poll_seconds: PositiveFloat = Field(
        10.0, description="s between queries of the job's state while it is followed"
    )
    unreachable_after: PositiveFloat = Field(
        600.0,
        description=(
            "s of failing queries (the scheduler does not answer) after which 'wait' stops "
            "following and says it cannot reach the scheduler; the job is left alone and "
            "nothing is recorded: 'wait' again later. Queries are retried with doubling pauses "
            "of at most 60 s"
        ),
    )

    @field_validator("queue", "account")
    @classmethod
    def _one_name(cls, value: str | None) -> str | None:
        if value is not None and _NAME.fullmatch(value) is None:
            bad = next((c for c in value if _NAME.fullmatch(c) is None), "")
            raise ValueError(
                f"must be one name of letters, digits and _.+@:- (it holds {bad!r}); it "
                "reaches the job script, where nothing is read as shell text"
            )
        return value

    @field_validator("time_limit")
    @classmethod
    def _duration(cls, value: str) -> str:
        try:
            seconds = parse_duration(value) if SCHEDULER_CLOCK.match(value) else 0.0
        except ValueError:
            seconds = 0.0
        if seconds <= 0:
            raise ValueError(
                "expected [days-]hours:minutes:seconds, e.g. '12:00:00' or '1-00:00:00'"
            )
        return value

    @property
    def duration(self) -> timedelta:
        """The time limit as a timedelta."""
        return timedelta(seconds=parse_duration(self.time_limit))


class SlurmExecution(BatchExecution):
    """A SLURM batch job (sbatch)."""

    type: Literal["slurm"] = Field("slurm", description="SLURM")


class PbsExecution(BatchExecution):
    """A PBS Pro / OpenPBS batch job (qsub)."""

    type: Literal["pbs"] = Field("pbs", description="PBS Pro or OpenPBS")


class LsfExecution(BatchExecution):
    """An IBM Spectrum LSF batch job (bsub)."""

    type: Literal["lsf"] = Field("lsf", description="IBM Spectrum LSF")


Execution = Annotated[
    LocalExecution | SlurmExecution | PbsExecution | LsfExecution, Field(discriminator="type")
]
