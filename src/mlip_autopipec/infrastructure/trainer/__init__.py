"""Everything that trains a potential: the trainers, and the factory that builds one from a config.

``create_trainer`` chooses the trainer (``type``) and where its compute steps run (``execution``:
here, or as a batch job), so that the trainer itself knows no scheduler.
"""

from __future__ import annotations

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.infrastructure.trainer.after_fit import ReportBuilder
from mlip_autopipec.infrastructure.trainer.base import BaseTrainer
from mlip_autopipec.infrastructure.trainer.batch.runner import BatchLauncher
from mlip_autopipec.infrastructure.trainer.mock_trainer import MockTrainer
from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.programs.launcher import Launcher, LocalLauncher
from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink

__all__ = [
    "BaseTrainer",
    "MockTrainer",
    "PacemakerTrainer",
    "ProgressSink",
    "create_trainer",
    "make_pacemaker_trainer",
]


def make_pacemaker_trainer(
    config: TrainerConfig,
    on_output_line: ProgressSink | None = None,
    *,
    report: ReportBuilder | None = None,
) -> PacemakerTrainer:
    """The pacemaker trainer of ``config``, its compute steps run where ``execution`` says."""
    launcher: Launcher = (
        BatchLauncher(on_output_line)
        if isinstance(config.execution, BatchExecution)
        else LocalLauncher()
    )
    return PacemakerTrainer(config, on_output_line, launcher=launcher, report=report)


def create_trainer(
    config: TrainerConfig,
    on_output_line: ProgressSink | None = None,
    *,
    report: ReportBuilder | None = None,
) -> BaseTrainer:
    """The trainer that ``config.type`` names; ``on_output_line`` follows the run (the
    programs' output lines and the training's steps); ``report`` builds the training report
    of a finished run (``mlip_autopipec.create_trainer`` hands the report layer's builder in)."""
    if config.type == "pacemaker":
        return make_pacemaker_trainer(config, on_output_line, report=report)
    return MockTrainer(config)
