"""A batch job killed at its time limit leaves pacemaker's interim potential, which resume and
finish take (a real single-node SLURM, tests/cluster/start_slurm.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlip_autopipec.cli import EXIT_TRAINING_FAILED
from mlip_autopipec.infrastructure.rundir.files import INTERIM_POTENTIAL
from mlip_autopipec.infrastructure.rundir.records import BatchRecord
from mlip_autopipec.infrastructure.trainer.interrupted.interim import unfinished_run

from ..conftest import TrainCli, write_executable
from ..infrastructure.trainer.interrupted.test_interim import INTERRUPTED_PACEMAKER
from .conftest import slurm_trainer

pytestmark = pytest.mark.cluster


def test_a_job_killed_at_its_time_limit_keeps_the_interim_potential(
    slurm: str, cli: TrainCli, fake_pacemaker: Path
) -> None:
    # Saves an interim potential after "iteration 7", then sleeps beyond the 1-minute limit.
    write_executable(fake_pacemaker / "pacemaker", INTERRUPTED_PACEMAKER)
    out = cli.out

    code = cli.train(slurm_trainer(slurm, time_limit="00:01:00"))

    assert code == EXIT_TRAINING_FAILED
    assert BatchRecord.load(out).outcome == "failed"
    assert (out / INTERIM_POTENTIAL).is_file()
    assert not (out / "potential.json").exists() and not (out / "potential.yace").exists()
    # resume and finish read the batch run's record; they would run on this machine.
    unfinished = unfinished_run(out, "finish")
    assert unfinished.iterations_done == 7
    assert unfinished.config.execution.type == "slurm"
