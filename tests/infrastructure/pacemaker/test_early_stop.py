"""fit.early_stop_patience: pacemaker's own early stopping, set and read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlip_autopipec.config.config_model import FitSettings, parse_trainer_config
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.pacemaker.early_stop import (
    early_stop_record,
    early_stopping_keys,
    stopped_early,
)
from mlip_autopipec.infrastructure.pacemaker.input_yaml import build_pacemaker_input

ITERATION = (
    "2026-01-01 00:00:0{n},000 - pyace.metrics_aggregator - INFO - Iteration   #{n}    (1 evals):"
    "        Loss: 1.0e+00 | RMSE Energy(low): 1.00 (1.00) meV/at | Forces(low): 1.00 (1.00) "
    "meV/A | Time/eval: 1.00 mcs/at"
)
EARLY = (
    "2026-01-01 00:00:09,000 - pyace.generalfit - INFO - EARLY STOPPING: Too small or even "
    "positive TEST loss change (best=-1.96e-02  / iter, ...) within last 10 iterations. Stopping"
)


def _fit(**fit: object) -> FitSettings:
    return parse_trainer_config({"type": "pacemaker", "cutoff": 4.5, "fit": fit}).fit


def test_patience_in_evaluations_becomes_pacemakers_iterations_and_rate() -> None:
    assert early_stopping_keys(_fit()) == {}
    keys = early_stopping_keys(_fit(early_stop_patience=3, display_step=20))
    # 3 changes between 4 evaluations, 20 iterations apart; 0.1 % per evaluation.
    assert keys == {
        "early_stopping_patience": 80,
        "min_relative_test_loss_per_iter": pytest.approx(1e-3 / 20),
    }
    no_test = early_stopping_keys(
        _fit(early_stop_patience=2, test_size=0, early_stop_min_improvement=0.01)
    )
    assert no_test == {
        "early_stopping_patience": 150,
        "min_relative_train_loss_per_iter": pytest.approx(0.01 / 50),
    }


def test_the_keys_reach_input_yaml() -> None:
    config = parse_trainer_config(
        {
            "type": "pacemaker",
            "cutoff": 4.5,
            "b_ref": {"type": "none"},
            "fit": {"early_stop_patience": 2, "display_step": 5},
        }
    )
    built = build_pacemaker_input(
        config,
        baseline=config.b_ref,
        elements=("Cu",),
        min_distances={("Cu", "Cu"): 2.2},
        data_filename="data.pckl.gzip",
        n_atoms=100,
    )
    fit = built.to_yaml_dict()["fit"]
    assert fit["early_stopping_patience"] == 15
    assert fit["min_relative_test_loss_per_iter"] == pytest.approx(2e-4)


@pytest.mark.parametrize(
    "fit",
    [
        {"early_stop_patience": 0},
        {"early_stop_patience": True},
        {"early_stop_patience": 2, "early_stop_min_improvement": 0},
        {"early_stop_patience": 2, "early_stop_min_improvement": 1.0},
    ],
)
def test_bad_settings_name_the_field(fit: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="early_stop_"):
        parse_trainer_config({"type": "pacemaker", "cutoff": 4.5, "fit": fit})


def test_only_the_last_run_of_the_log_counts(tmp_path: Path) -> None:
    log = tmp_path / "pacemaker.log"
    first = "=== 2026-01-01 running in /x: pacemaker input.yaml"
    second = "=== 2026-01-02 running in /x: pacemaker input_resume.yaml"
    log.write_text(
        "\n".join(
            [
                first,
                ITERATION.format(n=1),
                EARLY,
                "=== exit code 0",
                second,
                ITERATION.format(n=1),
                ITERATION.format(n=2),
                "=== exit code 0",
            ]
        )
    )
    assert not stopped_early(log) and early_stop_record(log) is None

    log.write_text(
        "\n".join([second, *(ITERATION.format(n=n) for n in range(1, 8)), EARLY, "=== exit code 0"])
    )
    record = early_stop_record(log)
    assert record is not None and record.early_stop and record.stopped_at_iteration == 7
    assert "stopped early at iteration 7" in record.describe()
    assert not stopped_early(tmp_path / "absent.log")


@pytest.mark.requires_pacemaker
def test_pacemakers_rule_with_these_keys_stops_after_n_evaluations_without_improvement() -> None:
    # pacemaker's own check (pyace GeneralACEFit.detect_early_stopping), fed one test loss per
    # evaluation: a fall of 10 % per evaluation, then a plateau (0.01 % per evaluation).
    from pyace.generalfit import GeneralACEFit, TestLossChangeTooSmallException

    fit_settings = _fit(early_stop_patience=3, display_step=10)
    keys = early_stopping_keys(fit_settings)
    fit = object.__new__(GeneralACEFit)
    fit.display_step = 10
    fit.early_stopping_occured = False
    fit.early_stopping_patience = keys["early_stopping_patience"]
    fit.min_relative_test_loss_per_iter = -keys["min_relative_test_loss_per_iter"]
    fit.test_loss_list = []
    losses = [0.9**k for k in range(5)]
    losses += [losses[-1] * 0.9999**k for k in range(1, 6)]
    stopped_at = None
    for evaluation, loss in enumerate(losses):
        fit.test_loss_list.append(loss)
        try:
            fit.detect_early_stopping(mode="test")
        except TestLossChangeTooSmallException:
            stopped_at = evaluation
            break
    # Evaluations 0-4 fall by 10 %; 5, 6 and 7 are the first three without improvement.
    assert stopped_at == 7
