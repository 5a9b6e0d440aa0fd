"""The measured cost estimate: pacemaker fits a sample; the model when it cannot."""

from __future__ import annotations

import logging
import math
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.infrastructure.rundir.files import DATA_FILE
from mlip_autopipec.infrastructure.trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.cost import budget
from mlip_autopipec.infrastructure.trainer.cost import estimate as cost
from mlip_autopipec.infrastructure.trainer.cost.budget import size_fit
from mlip_autopipec.infrastructure.trainer.cost.probe import (
    PROBE_ITERATIONS,
    PROBE_TEST_SIZE,
    ProbeTiming,
    ProbeUnavailable,
    check_pacemaker,
    probe_input,
    run_probe,
)
from mlip_autopipec.infrastructure.trainer.programs.profile import (
    ProgramProfile,
    program_environment,
)
from mlip_autopipec.infrastructure.trainer.programs.runner import resolve_executable

CONFIG = {
    "type": "pacemaker",
    "cutoff": 4.5,
    "threads": 1,
    "ace_params": {"number_of_functions_per_element": 4},
}


def write_executable(path: Path, body: str) -> Path:
    """A Python script run by this interpreter, executable."""
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _profile(pacemaker: str) -> ProgramProfile:
    config = parse_trainer_config(CONFIG)
    return ProgramProfile({"pacemaker": pacemaker}, program_environment(config))


def _sized(dataset: Dataset, pacemaker: str, **fit: Any) -> budget.SizedFit:
    config = parse_trainer_config({**CONFIG, "fit": fit})
    plan = PacemakerTrainer(config).plan_run(dataset)
    return size_fit(
        plan.pacemaker_input,
        dataset,
        config.fit,
        basis_given=True,
        threads=1,
        profile=_profile(pacemaker),
    )


@pytest.mark.requires_pacemaker
def test_pacemaker_fits_a_sample_and_its_timing_is_scaled_to_the_training_set(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(budget, "PROBE_SHARE", math.inf)  # a tiny fit: measure all the same
    probes: list[ProbeTiming] = []

    def recording(*args: Any, **kwargs: Any) -> ProbeTiming:
        probes.append(run_probe(*args, **kwargs))
        return probes[-1]

    monkeypatch.setattr(budget, "run_probe", recording)
    caplog.set_level(logging.INFO)
    sized = _sized(cu_pt_dataset, resolve_executable("pacemaker"), maxiter=50, test_size=0.25)

    assert "pacemaker fits a sample of the data" in caplog.text
    (probe,) = probes
    assert probe.sample_structures == len(cu_pt_dataset)  # fewer atoms than the sample's
    assert probe.sample_atoms == cu_pt_dataset.n_atoms
    assert probe.total_functions == 8  # 4 per element, two elements
    # pacemaker's own timer: µs per atom, well below a second for 8 functions
    assert 0 < probe.evaluation_s_per_atom < 1e-2
    assert probe.step_s >= 0
    assert 0 < probe.startup_s < probe.wall_s

    estimate = sized.estimate
    assert estimate is not None and estimate.method == "measured"
    assert f"pacemaker fitted {probe.sample_atoms} atoms" in estimate.note
    assert estimate.seconds_per_iteration == pytest.approx(
        cost.EVALS_PER_ITERATION * probe.evaluation_s_per_atom * estimate.fitted_atoms
        + probe.step_s
    )
    assert estimate.startup_s == pytest.approx(probe.startup_s)  # the sample is all the data
    assert "; measured: " in estimate.describe(50)


def test_the_probes_input_is_the_fits_with_the_sample_and_a_few_iterations(
    cu_pt_dataset: Dataset,
) -> None:
    config = parse_trainer_config(
        {**CONFIG, "fit": {"maxiter": 900, "early_stop_patience": 3, "test_size": 0.2}}
    )
    fit_input = PacemakerTrainer(config).plan_run(cu_pt_dataset).pacemaker_input
    fit_input = budget.with_deadline_callback(fit_input)
    probed = probe_input(fit_input, with_test_set=True).to_yaml_dict()
    expected = fit_input.to_yaml_dict()
    assert probed["potential"] == expected["potential"]  # the basis that will be fitted
    assert probed["fit"]["loss"] == expected["fit"]["loss"]
    assert probed["backend"]["batch_size"] == expected["backend"]["batch_size"]
    assert probed["fit"]["maxiter"] == PROBE_ITERATIONS
    assert "callbacks" not in probed["fit"] and "early_stopping_patience" not in probed["fit"]
    assert probed["data"] == {"filename": DATA_FILE, "test_size": PROBE_TEST_SIZE}
    assert probed["backend"]["display_step"] > PROBE_ITERATIONS  # one test evaluation only
    without = probe_input(fit_input, with_test_set=False).to_yaml_dict()
    assert without["data"] == {"filename": DATA_FILE}
    # An upfit's start file is not in the probe's directory; its basis is built afresh.
    start = fit_input.potential.model_copy(update={"filename": "parent_potential.yaml"})
    upfit = probe_input(fit_input.model_copy(update={"potential": start}), with_test_set=False)
    assert upfit.to_yaml_dict()["potential"] == expected["potential"]
    yaml.safe_dump(probed)  # plain data, as written


def test_only_python_aces_pacemaker_is_probed(tmp_path: Path) -> None:
    fake = write_executable(tmp_path / "pacemaker", "import sys\nsys.exit(0)\n")
    with pytest.raises(ProbeUnavailable, match="not python-ace's pacemaker"):
        check_pacemaker(str(fake))
    with pytest.raises(ProbeUnavailable, match="cannot read"):
        check_pacemaker(str(tmp_path / "missing"))
    real_like = write_executable(tmp_path / "pace", "from pyace.cli.pacemaker import main\n")
    check_pacemaker(str(real_like))


@pytest.mark.requires_pacemaker  # the model counts pyace's functions
def test_a_fake_pacemaker_gets_the_model_and_says_why(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "PROBE_SHARE", math.inf)
    fake = write_executable(tmp_path / "pacemaker", "import sys\n")
    sized = _sized(cu_pt_dataset, str(fake), maxiter=50)
    assert sized.estimate is not None and sized.estimate.method == "model"
    assert "not python-ace's pacemaker" in sized.estimate.note
    assert "; model: not measured: " in sized.estimate.describe(50)


@pytest.mark.requires_pacemaker  # the model counts pyace's functions
def test_a_probe_dearer_than_its_share_of_the_fit_is_not_run(
    cu_pt_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any, **kwargs: Any) -> ProbeTiming:
        raise AssertionError("the probe ran")

    monkeypatch.setattr(budget, "run_probe", never)
    sized = _sized(cu_pt_dataset, resolve_executable("pacemaker"), maxiter=5)
    assert sized.estimate is not None and sized.estimate.method == "model"
    assert "more than 10% of the fit" in sized.estimate.note


@pytest.mark.requires_pacemaker  # the model counts pyace's functions
def test_a_failing_or_slow_probe_falls_back_to_the_model(
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(budget, "PROBE_SHARE", math.inf)
    broken = write_executable(
        tmp_path / "pacemaker", "import sys  # pyace\nsys.exit('no tensorflow here')\n"
    )
    sized = _sized(cu_pt_dataset, str(broken), maxiter=50)
    assert sized.estimate is not None and sized.estimate.method == "model"
    assert "no tensorflow here" in sized.estimate.note
    assert "the cost could not be measured" in caplog.text

    silent = write_executable(tmp_path / "pace_silent", "# pyace: logs no iteration\n")
    with pytest.raises(ProbeUnavailable, match="too few iterations"):
        run_probe(_profile(str(silent)), _fit_input(cu_pt_dataset), cu_pt_dataset, **SMALL)
    slow = write_executable(tmp_path / "pace_slow", "import time  # pyace\ntime.sleep(60)\n")
    with pytest.raises(ProbeUnavailable, match="time limit"):
        run_probe(
            _profile(str(slow)), _fit_input(cu_pt_dataset), cu_pt_dataset, **SMALL, time_limit_s=1
        )


SMALL: dict[str, Any] = {"total_functions": 8, "with_test_set": False}


def _fit_input(dataset: Dataset) -> Any:
    return PacemakerTrainer(parse_trainer_config(CONFIG)).plan_run(dataset).pacemaker_input
