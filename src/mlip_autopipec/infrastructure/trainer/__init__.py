"""Everything that knows pacemaker: its data file, its input.yaml, running its programs."""

from __future__ import annotations

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.infrastructure.trainer.base import BaseTrainer
from mlip_autopipec.infrastructure.trainer.mock_trainer import MockTrainer
from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.programs.progress import ProgressSink

__all__ = ["BaseTrainer", "MockTrainer", "PacemakerTrainer", "create_trainer"]


def create_trainer(
    config: TrainerConfig, on_output_line: ProgressSink | None = None
) -> BaseTrainer:
    """The trainer that ``config.type`` names; ``on_output_line`` follows the run (the
    programs' output lines and the training's steps)."""
    if config.type == "pacemaker":
        return PacemakerTrainer(config, on_output_line=on_output_line)
    return MockTrainer(config)
