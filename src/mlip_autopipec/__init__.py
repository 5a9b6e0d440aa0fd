"""mlip-autopipec: automated machine-learned interatomic potentials; the Trainer stage (ACE)."""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from mlip_autopipec.config.config_model import TrainerConfig, load_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import ConfigurationError, DatasetValidationError, TrainerError
from mlip_autopipec.infrastructure.trainer import create_trainer

if TYPE_CHECKING:
    from mlip_autopipec.loop import resume_loop, run_loop

try:
    __version__ = _metadata.version("mlip-autopipec")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ConfigurationError",
    "Dataset",
    "DatasetValidationError",
    "Potential",
    "TrainerConfig",
    "TrainerError",
    "__version__",
    "create_trainer",
    "load_config",
    "resume_loop",
    "run_loop",
]


def __getattr__(name: str) -> Any:
    """The loop's entry points, imported when first used (the loop pulls in MD and plotting)."""
    if name in ("run_loop", "resume_loop"):
        from mlip_autopipec import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'mlip_autopipec' has no attribute '{name}'")
