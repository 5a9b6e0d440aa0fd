"""trainer.execution: local by default, batch jobs with a checked time limit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.config.execution import LocalExecution, SlurmExecution
from mlip_autopipec.errors import ConfigurationError


def test_local_is_the_default() -> None:
    config = parse_trainer_config({"type": "pacemaker", "cutoff": 5.0})
    assert isinstance(config.execution, LocalExecution)


def test_a_slurm_execution_reads_every_field() -> None:
    execution = {
        "type": "slurm",
        "queue": "gpu",
        "account": "proj123",
        "time_limit": "1-12:00:00",
        "cpus": 16,
        "gpus": 1,
        "setup": ["module load cuda/12"],
    }
    config = parse_trainer_config({"type": "pacemaker", "cutoff": 5.0, "execution": execution})
    assert isinstance(config.execution, SlurmExecution)
    assert config.execution.duration == timedelta(days=1, hours=12)
    assert config.execution.setup == ["module load cuda/12"]


@pytest.mark.parametrize("text", ["12h", "12:00", "0:00:00", "1:60:00", "-1:00:00", ""])
def test_a_bad_time_limit_names_the_field(text: str) -> None:
    execution = {"type": "slurm", "time_limit": text}
    with pytest.raises(ConfigurationError) as error:
        parse_trainer_config({"type": "pacemaker", "cutoff": 5.0, "execution": execution})
    assert "trainer.execution.time_limit" in str(error.value)


def test_an_unknown_scheduler_and_missing_time_limit_are_errors() -> None:
    with pytest.raises(ConfigurationError) as error:
        parse_trainer_config(
            {"type": "pacemaker", "cutoff": 5.0, "execution": {"type": "htcondor"}}
        )
    assert "trainer.execution" in str(error.value)
    with pytest.raises(ConfigurationError) as error:
        parse_trainer_config({"type": "pacemaker", "cutoff": 5.0, "execution": {"type": "pbs"}})
    assert "trainer.execution.time_limit" in str(error.value)


def test_gpu_devices_belong_to_local_runs() -> None:
    execution = {"type": "lsf", "time_limit": "01:00:00", "gpus": 1}
    with pytest.raises(ConfigurationError) as error:
        parse_trainer_config(
            {"type": "pacemaker", "cutoff": 5.0, "gpu_devices": "0", "execution": execution}
        )
    assert "execution.gpus" in str(error.value)


def test_a_time_budget_belongs_to_local_runs() -> None:
    execution = {"type": "slurm", "time_limit": "01:00:00"}
    with pytest.raises(ConfigurationError) as error:
        parse_trainer_config(
            {
                "type": "pacemaker",
                "cutoff": 5.0,
                "fit": {"time_budget": "30min"},
                "execution": execution,
            }
        )
    assert "trainer.execution" in str(error.value)
    assert "execution.time_limit: give fit.maxiter instead" in str(error.value)
