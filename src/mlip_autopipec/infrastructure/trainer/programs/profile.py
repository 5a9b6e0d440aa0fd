"""How pacemaker's programs run on this machine: one object that every program call goes through.

In the spirit of ASE's ``BaseProfile``: the profile knows the resolved executables, the
environment (threads, GPUs), the time limit of each program, where each program's log goes
(``<program>.log`` in the directory it runs in) and who follows the run (a ProgressSink). The
trainer says *what* to run as :class:`ProgramStep` lists; the profile runs them here, and a
batch job runs the same steps on a compute node (``batch_job.run_steps``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink
from mlip_autopipec.infrastructure.trainer.programs.runner import resolve_executable, run_program
from mlip_autopipec.infrastructure.trainer.programs.steps import JobResult, ProgramStep, StepOutcome

Program = Literal["pacemaker", "pace_yaml2yace", "pace_activeset", "pace_select"]
#: What a fit runs (pace_select only when it selects structures).
FIT_PROGRAMS: tuple[Program, ...] = ("pacemaker", "pace_yaml2yace", "pace_activeset")


class StepRunner(Protocol):
    """What a trainer asks when it wants programs run: this profile here, a batch job there."""

    def run_steps(self, steps: Sequence[ProgramStep], workdir: Path) -> JobResult:
        """Run ``steps`` in order in ``workdir``; a failed required step raises TrainerError."""


def log_name(program: str) -> str:
    """The log file of a program in the directory it runs in, e.g. ``pacemaker.log``."""
    return f"{program}.log"


@dataclass(frozen=True)
class ProgramProfile:
    """Runs pacemaker's programs here: resolved executables, environment, time limit, progress.

    ``executables`` maps a program's name to its absolute path; ``environment`` is added to
    ours for every program; ``time_limit_s`` bounds each program (None: no limit).
    """

    executables: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    time_limit_s: float | None = None
    progress: ProgressSink | None = None

    @classmethod
    def for_config(
        cls,
        config: TrainerConfig,
        progress: ProgressSink | None = None,
        programs: Iterable[Program] = FIT_PROGRAMS,
    ) -> ProgramProfile:
        """The profile of ``config`` on this machine; TrainerError (saying how to install it)
        when a program is missing, before anything is written."""
        return cls(
            executables={
                name: resolve_executable(getattr(config.executables, name)) for name in programs
            },
            environment=program_environment(config),
            time_limit_s=config.time_limit_seconds,
            progress=progress,
        )

    def executable(self, program: Program) -> str:
        """The absolute path of ``program``, which the profile must have resolved."""
        try:
            return self.executables[program]
        except KeyError:
            raise ValueError(f"the profile has not resolved {program}") from None

    def step(self, name: str) -> AbstractContextManager[None]:
        """Shows a named step of the training to whoever follows it."""
        return show_step(self.progress, name)

    def plan_iterations(self, iterations: int) -> None:
        """Tells whoever follows the run how many fit iterations are planned."""
        if self.progress is not None:
            self.progress.plan_iterations(iterations)

    def program_step(
        self,
        program: Program,
        arguments: Sequence[str],
        *,
        required: bool = True,
        title: str | None = None,
    ) -> ProgramStep:
        """A step that runs ``program`` with ``arguments``, logging to ``<program>.log``."""
        argv = [self.executable(program), *arguments]
        return ProgramStep(
            name=program, argv=argv, log=log_name(program), required=required, title=title
        )

    def run(self, program: Program, arguments: Sequence[str], workdir: Path) -> None:
        """Runs one program in ``workdir``; TrainerError when it fails."""
        self.run_step(self.program_step(program, arguments), workdir)

    def run_step(self, step: ProgramStep, workdir: Path) -> None:
        """Runs one step in ``workdir``, its output to its log and the progress sink."""
        run_program(
            step.argv,
            workdir=workdir,
            log_path=workdir / step.log,
            env={**self.environment, **step.environment},
            time_limit_s=self.time_limit_s,
            on_line=self.progress,
        )

    def run_steps(self, steps: Sequence[ProgramStep], workdir: Path) -> JobResult:
        """Runs ``steps`` in order; a failed required step raises its TrainerError, a failed
        optional one is recorded in the result."""
        outcomes = []
        for step in steps:
            outcome, error = self.try_step(step, workdir)
            if error is not None and step.required:
                raise error
            outcomes.append(outcome)
        return JobResult(steps=outcomes)

    def try_step(self, step: ProgramStep, workdir: Path) -> tuple[StepOutcome, TrainerError | None]:
        """Runs one step as a named step of the run; how it ended, and its error if it failed."""
        started = time.monotonic()
        try:
            with self.step(step.title or step.name):
                self.run_step(step, workdir)
        except TrainerError as error:
            return StepOutcome.failure(step, error, time.monotonic() - started), error
        return StepOutcome.success(step, time.monotonic() - started), None


def show_step(progress: ProgressSink | None, name: str) -> AbstractContextManager[None]:
    """``progress.step(name)``, or nothing to show when no one follows the run."""
    return contextlib.nullcontext() if progress is None else progress.step(name)


def thread_environment(threads: int) -> dict[str, str]:
    """pacemaker's (TensorFlow's) thread counts, and TensorFlow's log level."""
    return {
        "OMP_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(threads),
        "TF_CPP_MIN_LOG_LEVEL": "1",
    }


def program_environment(config: TrainerConfig) -> dict[str, str]:
    """Thread counts and visible GPUs for pacemaker (TensorFlow), from the config.

    Threads default to all cores of the machine. GPUs default to those of the machine when it
    has any; otherwise CUDA is hidden, which also spares TensorFlow its search for a GPU.
    """
    environment = thread_environment(config.threads or os.cpu_count() or 1)
    if config.gpu_devices is not None:
        environment["CUDA_VISIBLE_DEVICES"] = config.gpu_devices
    elif not machine_has_gpu():
        environment["CUDA_VISIBLE_DEVICES"] = "-1"
    return environment


def machine_has_gpu() -> bool:
    """True when an NVIDIA driver reports at least one GPU."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())
