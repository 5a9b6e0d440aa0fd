"""mlip-autopipec: automated machine-learned interatomic potentials; the Trainer stage (ACE)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlip_autopipec.config.config_model import TrainerConfig, load_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import ConfigurationError, DatasetValidationError, TrainerError
from mlip_autopipec.infrastructure.trainer import BaseTrainer, ProgressSink
from mlip_autopipec.infrastructure.trainer import create_trainer as _create_trainer
from mlip_autopipec.version import __version__

if TYPE_CHECKING:
    from mlip_autopipec.loop import resume_loop, run_loop

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


def create_trainer(
    config: TrainerConfig, on_output_line: ProgressSink | None = None
) -> BaseTrainer:
    """The trainer that ``config.type`` names, which writes the training report of each
    finished run (``report/mlip_autopipec/report.html``); ``on_output_line`` follows the run."""
    from mlip_autopipec.report import build_report_or_warn  # matplotlib, loaded when used

    return _create_trainer(config, on_output_line, report=build_report_or_warn)


def __getattr__(name: str) -> Any:
    """The loop's entry points, imported when first used (the loop pulls in MD and plotting)."""
    if name in ("run_loop", "resume_loop"):
        from mlip_autopipec import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'mlip_autopipec' has no attribute '{name}'")
