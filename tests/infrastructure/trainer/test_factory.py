"""create_trainer chooses where the compute steps run and hands the report builder down."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.trainer import PacemakerTrainer, create_trainer
from mlip_autopipec.infrastructure.trainer.batch.runner import BatchLauncher
from mlip_autopipec.infrastructure.trainer.programs.launcher import LocalLauncher

LOCAL = {"type": "pacemaker", "cutoff": 5.0}
SLURM = {**LOCAL, "execution": {"type": "slurm", "time_limit": "1:00:00"}}


def test_the_execution_chooses_the_launcher_and_the_report_is_handed_down() -> None:
    def report(run_dir: Path) -> None:
        """A report builder."""

    local = create_trainer(parse_trainer_config(LOCAL), report=report)
    assert isinstance(local, PacemakerTrainer) and isinstance(local.launcher, LocalLauncher)
    assert local.report is report
    batch = create_trainer(parse_trainer_config(SLURM))
    assert isinstance(batch, PacemakerTrainer) and isinstance(batch.launcher, BatchLauncher)
    assert batch.report is None
    # A trainer of another config keeps both (a next generation is fitted so).
    assert batch.with_config(parse_trainer_config(SLURM)).launcher is batch.launcher


def test_a_batch_execution_without_its_launcher_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"trainer\.execution"):
        PacemakerTrainer(parse_trainer_config(SLURM))
