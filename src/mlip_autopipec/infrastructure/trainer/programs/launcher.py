"""Where a fit's compute steps run: here, through the profile, or elsewhere (a batch job).

The trainer asks its launcher; the factory (``create_trainer``) chooses it from the config's
``execution``, so that the trainer knows no scheduler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.infrastructure.rundir.records import PendingRun
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile, StepRunner


class Launcher(Protocol):
    """Checks where the steps will run before anything is written, and gives their runner."""

    #: The steps run elsewhere: a time budget starts there, and their log says their timing.
    remote: bool

    def check(self, config: TrainerConfig, workdir: Path) -> None:
        """Raise (ConfigurationError, TrainerError) when the steps could not run."""

    def runner(self, config: TrainerConfig, run: PendingRun, profile: ProgramProfile) -> StepRunner:
        """Who runs the steps of the run ``run`` (recorded with a job that another process may
        finish)."""


class LocalLauncher:
    """The steps run here, one after the other, through the profile."""

    remote = False

    def check(self, config: TrainerConfig, workdir: Path) -> None:
        """Nothing to check: the profile found the programs."""

    def runner(self, config: TrainerConfig, run: PendingRun, profile: ProgramProfile) -> StepRunner:
        return profile
