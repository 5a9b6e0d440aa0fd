"""Real pacemaker fits: Ctrl-C leaves the interim potential; train --resume continues from it
(with pacemaker's early stopping switched on for the rest), finish makes it a marked potential."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlip_autopipec.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, main
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.rundir.files import INTERIM_POTENTIAL, MANIFEST, RESUME_START
from mlip_autopipec.infrastructure.trainer.interrupted.interim import unfinished_run
from mlip_autopipec.oracle.emt import label_with_emt

from ....conftest import cu_pt_structures, interrupt_as_from_a_terminal, train_arguments

pytestmark = [pytest.mark.slow, pytest.mark.requires_pacemaker]

CONFIG = """\
trainer:
  type: pacemaker
  cutoff: 4.5
  ace_params: {number_of_functions_per_element: 8}
  fit: {maxiter: 2000, test_size: 0.2, display_step: 5}
  threads: 2
  accept_failed_checks: true   # a few iterations: the safety gate is not the point here
"""
#: s; generous bounds for pacemaker to reach an iteration (polled, not timed).
PATIENCE_S = 600.0
#: Iterations before the test presses Ctrl-C.
INTERRUPT_AFTER = 30
_ITERATION = re.compile(r"Iteration\s+#(\d+)\s.*?Loss: ([0-9.eE+-]+)")


def _losses(log: Path) -> list[list[tuple[int, float]]]:
    """(iteration, loss) of every pacemaker run in ``log`` (the runner opens each with '=== ')."""
    runs: list[list[tuple[int, float]]] = []
    for line in log.read_text().splitlines():
        if line.startswith("=== ") and " running in " in line:
            runs.append([])
        elif (match := _ITERATION.search(line)) is not None and runs:
            runs[-1].append((int(match[1]), float(match[2])))
    return runs


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory whose real fit was stopped by Ctrl-C after INTERRUPT_AFTER iterations."""
    tmp = tmp_path_factory.mktemp("interrupted")
    dataset = label_with_emt(cu_pt_structures(count=20, seed=3), source="tiny EMT Cu-Pt")
    run = tmp / "run"
    cli = subprocess.Popen(
        [sys.executable, "-m", "mlip_autopipec.cli", *train_arguments(tmp, dataset, CONFIG, run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interrupt_as_from_a_terminal,
    )
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        log = run / "pacemaker.log"
        runs = _losses(log) if log.exists() else []
        if runs and runs[-1] and runs[-1][-1][0] >= INTERRUPT_AFTER:
            break
        assert cli.poll() is None, cli.communicate()[1]
        time.sleep(0.2)
    cli.send_signal(signal.SIGINT)
    _, stderr = cli.communicate(timeout=PATIENCE_S)
    assert cli.returncode == EXIT_INTERRUPTED, stderr
    return run


def test_ctrl_c_leaves_the_interim_potential_and_nothing_that_claims_to_be_a_result(
    interrupted: Path,
) -> None:
    assert (interrupted / INTERIM_POTENTIAL).is_file()
    assert json.loads((interrupted / MANIFEST).read_text())["status"] == "interrupted"
    for result in ("potential.json", "potential.yace", "output_potential.yaml"):
        assert not (interrupted / result).exists(), result


def test_resume_continues_from_the_interim_potential_and_counts_on(
    interrupted: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    first = _losses(run / "pacemaker.log")[-1]
    done = unfinished_run(run, "resume").iterations_done  # also counts pacemaker's tables
    assert done >= INTERRUPT_AFTER and abs(done - first[-1][0]) <= 1
    # The rest of the fit stops early (real pacemaker callback): no evaluation cuts the test
    # loss by 90 %, so it stops as soon as its patience of one evaluation allows.
    config = tmp_path / "config.yaml"
    config.write_text(
        CONFIG.replace(
            "display_step: 5}",
            "display_step: 5, early_stop_patience: 1, early_stop_min_improvement: 0.9}",
        )
    )

    assert main(["train", "--resume", str(run), "--config", str(config)]) == EXIT_OK

    resumed = _losses(run / "pacemaker.log")[-1]
    # Its first iteration starts where the interrupted fit stopped (the interim potential is
    # that of its last or last but one logged iteration), not from a random start.
    start_loss = first[0][1]
    assert min(abs(resumed[0][1] - loss) / loss for _, loss in first[-2:]) < 0.05
    assert resumed[0][1] < 0.5 * start_loss
    assert (run / RESUME_START).is_file()
    assert "potential: resume_start.yaml" in (run / "input_resume.yaml").read_text()
    potential = Potential.load(run)
    assert potential.fit_stop is not None
    assert potential.fit_stop.resumed_from_iteration == done
    assert potential.fit_stop.early_stop
    # Test evaluations at iterations 0, 5, 10 of the resumed fit: the first check with a
    # patience of one evaluation comes at 10.
    assert "EARLY STOPPING" in (run / "pacemaker.log").read_text()
    assert potential.fit_stop.stopped_at_iteration == done + 10
    assert potential.fit_stop.finished_from == "fit"
    # A finished run is not resumed again.
    assert main(["train", "--resume", str(run)]) == EXIT_BAD_INPUT


def test_finish_makes_a_loadable_potential_marked_as_interim(
    interrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    done = unfinished_run(run, "finish").iterations_done

    assert main(["finish", str(run)]) == EXIT_OK

    assert "INTERIM potential" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="finished from the interim potential"):
        potential = Potential.load(run)
    assert potential.fit_stop is not None
    assert potential.fit_stop.finished_from == "interim"
    assert potential.fit_stop.stopped_at_iteration == done
    assert potential.train_metrics is not None and potential.test_metrics is not None
    assert potential.active_set_file is not None
    assert "finished_from_interim" in (run / "output_potential.yaml").read_text()
    atoms = label_with_emt(cu_pt_structures(count=1), source="one")[0].atoms.copy()
    atoms.calc = potential.ase_calculator()
    assert np.isfinite(atoms.get_potential_energy())
    # finish twice: the run is finished now.
    assert main(["finish", str(run)]) == EXIT_BAD_INPUT
