"""Everything that knows pacemaker: its data file, its input.yaml, running its programs."""

from __future__ import annotations

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.infrastructure.trainer.base import BaseTrainer
from mlip_autopipec.infrastructure.trainer.mock_trainer import MockTrainer
from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PacemakerTrainer

__all__ = ["BaseTrainer", "MockTrainer", "PacemakerTrainer", "create_trainer"]


def create_trainer(config: TrainerConfig) -> BaseTrainer:
    """The trainer that ``config.type`` names."""
    trainers: dict[str, type[BaseTrainer]] = {"mock": MockTrainer, "pacemaker": PacemakerTrainer}
    return trainers[config.type](config)
