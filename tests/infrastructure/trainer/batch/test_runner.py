"""The batch path without a scheduler: the job's step runner, its environment, the record."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlip_autopipec.config.config_model import NoBaseline, parse_trainer_config
from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, DataFile, Provenance
from mlip_autopipec.errors import OutputError
from mlip_autopipec.infrastructure.rundir.claim import claim_run_directory
from mlip_autopipec.infrastructure.rundir.files import (
    JOB_RESULT_JSON,
    JOB_STEPS_JSON,
    TRAINING_SET,
)
from mlip_autopipec.infrastructure.rundir.records import (
    BatchRecord,
    PendingRun,
    record_data_files,
    refuse_running_job,
)
from mlip_autopipec.infrastructure.trainer import make_pacemaker_trainer
from mlip_autopipec.infrastructure.trainer.batch import runner
from mlip_autopipec.infrastructure.trainer.batch.entry import main
from mlip_autopipec.infrastructure.trainer.batch.node import JobResult, JobSteps, ProgramStep
from mlip_autopipec.infrastructure.trainer.batch.runner import _LogTail, job_environment
from mlip_autopipec.infrastructure.trainer.batch.status import describe, last_progress

from ....conftest import TEST_DATA


def _write_steps(run_dir: Path, *steps: ProgramStep) -> None:
    run_dir.mkdir(exist_ok=True)
    (run_dir / JOB_STEPS_JSON).write_text(JobSteps(steps=list(steps)).model_dump_json())


def test_the_job_runs_its_steps_and_records_each(tmp_path: Path) -> None:
    _write_steps(
        tmp_path,
        ProgramStep(name="first", argv=["/bin/sh", "-c", "echo one"], log="first.log"),
        ProgramStep(
            name="optional", argv=["/bin/sh", "-c", "exit 3"], log="opt.log", required=False
        ),
        ProgramStep(name="last", argv=["echo", "two"], log="last.log"),
    )
    assert main([str(tmp_path)]) == 0
    result = JobResult.model_validate_json((tmp_path / JOB_RESULT_JSON).read_text())
    assert [(s.name, s.succeeded, s.exit_code) for s in result.steps] == [
        ("first", True, 0),
        ("optional", False, 3),
        ("last", True, 0),
    ]
    assert result.failed_step is None
    assert "one" in (tmp_path / "first.log").read_text()
    assert "two" in (tmp_path / "last.log").read_text()


def test_a_failed_required_step_ends_the_job(tmp_path: Path) -> None:
    _write_steps(
        tmp_path,
        ProgramStep(name="fit", argv=["/bin/sh", "-c", "echo bad input; exit 3"], log="fit.log"),
        ProgramStep(name="after", argv=["echo", "never"], log="after.log"),
    )
    assert main([str(tmp_path)]) == 1
    result = JobResult.model_validate_json((tmp_path / JOB_RESULT_JSON).read_text())
    failed = result.failed_step
    assert failed is not None and failed.name == "fit" and failed.exit_code == 3
    assert "bad input" in failed.log_tail
    assert result.outcome("after") is None
    assert not (tmp_path / "after.log").exists()


def test_a_missing_program_is_a_failed_step(tmp_path: Path) -> None:
    _write_steps(tmp_path, ProgramStep(name="fit", argv=["no_such_program_xyz"], log="fit.log"))
    assert main([str(tmp_path)]) == 1
    result = JobResult.model_validate_json((tmp_path / JOB_RESULT_JSON).read_text())
    assert result.failed_step is not None
    assert "not installed" in (result.failed_step.message or "")


def _execution(**fields: object) -> BatchExecution:
    execution = {"type": "slurm", "time_limit": "01:00:00", **fields}
    config = parse_trainer_config({"type": "pacemaker", "cutoff": 5.0, "execution": execution})
    assert isinstance(config.execution, BatchExecution)
    return config.execution


def test_the_job_sees_gpus_only_when_it_asks_for_them() -> None:
    config = parse_trainer_config({"type": "pacemaker", "cutoff": 5.0})
    cpu_only = job_environment(config, _execution(cpus=8))
    assert cpu_only["CUDA_VISIBLE_DEVICES"] == "-1"
    assert cpu_only["OMP_NUM_THREADS"] == cpu_only["TF_NUM_INTRAOP_THREADS"] == "8"
    # With GPUs the scheduler sets CUDA_VISIBLE_DEVICES to those it allocated.
    assert "CUDA_VISIBLE_DEVICES" not in job_environment(config, _execution(gpus=2))
    threaded = parse_trainer_config({"type": "pacemaker", "cutoff": 5.0, "threads": 3})
    assert job_environment(threaded, _execution(cpus=8))["OMP_NUM_THREADS"] == "3"


def test_the_log_tail_passes_on_whole_lines_only(tmp_path: Path) -> None:
    log = tmp_path / "pacemaker.log"
    log.write_text("old run\n")
    lines: list[str] = []
    tail = _LogTail(log, offset=log.stat().st_size, on_line=lines.append)
    tail.read()  # nothing new
    with open(log, "a") as stream:
        stream.write("first\nsec")
    tail.read()
    assert lines == ["first"]
    with open(log, "a") as stream:
        stream.write("ond\n")
    tail.read()
    assert lines == ["first", "second"]


def test_last_progress_reads_the_latest_iteration() -> None:
    line = last_progress(TEST_DATA / "pacemaker_progress.log")
    assert line.startswith("iteration ")
    assert "train E" in line and "meV/atom" in line


def _record(
    run_dir: Path, data_files: dict[str, DataFile] | None = None, **fields: object
) -> BatchRecord:
    config = parse_trainer_config(
        {
            "type": "pacemaker",
            "cutoff": 5.0,
            "execution": {"type": "slurm", "time_limit": "1:00:00"},
        }
    )
    run = PendingRun(
        elements=("Cu",),
        baseline=NoBaseline(),
        reference_energies={"Cu": -3.0},
        shortest_distances=[("Cu", "Cu", 2.3)],
        selection=None,
        provenance=Provenance(data_sha256=None, config_sha256=None, data_files=data_files or {}),
    )
    record = BatchRecord(
        backend="slurm",
        job_id="17",
        submitted_at=datetime.now(UTC),
        queue="debug",
        config=config,
        run=run,
        **fields,  # type: ignore[arg-type]
    )
    record.save(run_dir)
    return record


def test_the_record_round_trips_and_a_failed_run_says_why(tmp_path: Path) -> None:
    record = _record(tmp_path, outcome="failed", reason="slurm job 17: time limit")
    assert BatchRecord.load(tmp_path) == record
    assert record.run.distances() == {("Cu", "Cu"): 2.3}
    (tmp_path / "pacemaker.log").write_text("line 1\nKilled at the end\n")
    state, text = describe(tmp_path)
    assert state == "failed"
    assert text.startswith("failed: slurm job 17: time limit")
    assert "Killed at the end" in text


def test_wait_refuses_training_data_changed_while_the_job_ran(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The potential's record would describe data the job never fitted."""
    run_dir = tmp_path / "run"
    with claim_run_directory(run_dir) as run:  # as train --detach leaves it
        cu_pt_dataset.write(run.path / TRAINING_SET)
        counts = {TRAINING_SET: len(cu_pt_dataset)}
        record = _record(run.path, data_files=record_data_files(run.path, counts))
        run.hand_over()
    n = len(cu_pt_dataset) - 1
    cu_pt_dataset.subset(list(range(n))).write(run_dir / TRAINING_SET)  # edited meanwhile
    monkeypatch.setattr(runner, "follow", lambda *_: JobResult(steps=[]))  # the job has ended

    expected = (
        rf"training_set\.extxyz is not the data its run recorded in batch_job\.json: it holds "
        rf"{n} structures where the run fitted {n + 1} \(1 dropped\)"
    )
    with pytest.raises(OutputError, match=expected):
        runner.wait(make_pacemaker_trainer(record.config), run_dir)
    assert not (run_dir / POTENTIAL_JSON).exists()


def test_a_directory_with_an_unfinished_job_takes_no_new_fit(tmp_path: Path) -> None:
    refuse_running_job(tmp_path)  # no job: fine
    _record(tmp_path)
    with pytest.raises(OutputError, match="slurm job 17"):
        refuse_running_job(tmp_path)
    _record(tmp_path, outcome="cancelled", reason="cancelled")
    refuse_running_job(tmp_path)


def test_status_of_a_directory_without_a_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no batch job"):
        describe(tmp_path)


def test_a_job_restarted_by_the_scheduler_does_not_run_its_steps_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A requeued job would start pacemaker over from iteration 0, over the interim potential.
    _write_steps(tmp_path, ProgramStep(name="first", argv=["/bin/sh", "-c", "echo one"], log="f"))
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert main([str(tmp_path)]) == 1
    assert "restarted this job (restart 1): not run again" in capsys.readouterr().out
    assert not (tmp_path / "f").exists() and not (tmp_path / JOB_RESULT_JSON).exists()
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    assert main([str(tmp_path)]) == 0
