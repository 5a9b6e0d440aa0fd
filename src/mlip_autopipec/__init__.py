"""mlip-autopipec: automated machine-learned interatomic potentials; the Trainer stage (ACE)."""

from __future__ import annotations

from mlip_autopipec.config.config_model import TrainerConfig, load_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import ConfigurationError, DatasetValidationError, TrainerError
from mlip_autopipec.infrastructure.trainer import create_trainer

__all__ = [
    "ConfigurationError",
    "Dataset",
    "DatasetValidationError",
    "Potential",
    "TrainerConfig",
    "TrainerError",
    "create_trainer",
    "load_config",
]
