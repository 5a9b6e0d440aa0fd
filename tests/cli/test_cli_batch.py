"""The batch commands of the CLI where no scheduler is needed: usage errors, missing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlip_autopipec.cli import EXIT_BAD_INPUT, main

from ..conftest import TrainCli


def _trainer(execution: dict[str, object]) -> dict[str, object]:
    return {"type": "pacemaker", "cutoff": 5.0, "execution": execution}


def test_detach_needs_a_batch_execution(cli: TrainCli) -> None:
    assert cli.train(_trainer({"type": "local"}), "--detach") == EXIT_BAD_INPUT
    assert "trainer.execution.type" in cli.error()
    assert not cli.out.exists()


def test_a_scheduler_that_is_not_here_is_an_error_before_anything_is_written(
    cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_pacemaker))  # no qsub, whatever this machine has
    assert cli.train(_trainer({"type": "pbs", "time_limit": "01:00:00"})) == EXIT_BAD_INPUT
    error = cli.error()
    assert "trainer.execution.type" in error and "qsub" in error
    assert not cli.out.exists()


@pytest.mark.parametrize("command", ["status", "wait"])
def test_status_and_wait_need_a_batch_run(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(tmp_path)]) == EXIT_BAD_INPUT
    assert "holds no batch job" in capsys.readouterr().err


def test_wait_runs_the_programs_of_path_not_those_of_batch_job_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    from datetime import UTC, datetime

    from mlip_autopipec.config.config_model import Executables, NoBaseline, parse_trainer_config
    from mlip_autopipec.domain_models.potential import Provenance
    from mlip_autopipec.errors import OutputError
    from mlip_autopipec.infrastructure.rundir.records import BatchRecord, PendingRun
    from mlip_autopipec.infrastructure.trainer.batch import runner

    planted = parse_trainer_config(
        {
            **_trainer({"type": "slurm", "time_limit": "1:00:00"}),
            "executables": {"pace_yaml2yace": "/tmp/planted/evil"},
        }
    )
    run = PendingRun(
        elements=("Cu",),
        baseline=NoBaseline(),
        reference_energies={"Cu": -3.0},
        shortest_distances=[("Cu", "Cu", 2.3)],
        selection=None,
        provenance=Provenance(data_sha256=None, config_sha256=None),
    )
    BatchRecord(
        backend="slurm",
        job_id="17",
        submitted_at=datetime.now(UTC),
        queue=None,
        config=planted,
        run=run,
    ).save(tmp_path)
    seen = []

    def wait(trainer: object, run_dir: Path) -> None:  # what batch.wait would run with
        seen.append(trainer.config.executables)  # type: ignore[attr-defined]
        raise OutputError("stop here")

    monkeypatch.setattr(runner, "wait", wait)
    with caplog.at_level(logging.WARNING):
        assert main(["wait", str(tmp_path)]) == EXIT_BAD_INPUT

    assert seen == [Executables()]
    assert f"{tmp_path / 'batch_job.json'} records trainer.executables" in caplog.text
    assert "pace_yaml2yace: '/tmp/planted/evil'" in caplog.text and "ignored" in caplog.text
