"""The batch commands of the CLI where no scheduler is needed: usage errors, missing runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlip_autopipec.cli import EXIT_BAD_INPUT, main
from mlip_autopipec.domain_models.dataset import Dataset


def _trainer(execution: dict[str, object]) -> dict[str, object]:
    return {"type": "pacemaker", "cutoff": 5.0, "execution": execution}


def test_detach_needs_a_batch_execution(
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    train_argv: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = train_argv(cu_pt_dataset, _trainer({"type": "local"}), tmp_path / "run")
    assert main([*argv, "--detach"]) == EXIT_BAD_INPUT
    assert "trainer.execution.type" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_scheduler_that_is_not_here_is_an_error_before_anything_is_written(
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    train_argv: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(fake_pacemaker))  # no qsub, whatever this machine has
    pbs = _trainer({"type": "pbs", "time_limit": "01:00:00"})
    argv = train_argv(cu_pt_dataset, pbs, tmp_path / "run")
    assert main(argv) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert "trainer.execution.type" in error and "qsub" in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["status", "wait"])
def test_status_and_wait_need_a_batch_run(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(tmp_path)]) == EXIT_BAD_INPUT
    assert "holds no batch job" in capsys.readouterr().err
