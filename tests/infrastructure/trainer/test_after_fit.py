"""The one path after pacemaker (``after_fit``): every way a fit ends records how it stopped,
what it cost, a thin test set and its report; and every way goes through it (no fit runs)."""

from __future__ import annotations

import ast
import contextlib
import inspect
import logging
import textwrap
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlip_autopipec.analysis.safety import SafetyReport
from mlip_autopipec.config.config_model import NoBaseline, parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.fit_stop import FitStop
from mlip_autopipec.domain_models.potential import FitCost, Potential, Provenance
from mlip_autopipec.infrastructure.pacemaker.outputs import PredictionArrays
from mlip_autopipec.infrastructure.rundir.files import (
    PACEMAKER_LOG,
    TEST_PREDICTIONS,
    TRAIN_PREDICTIONS,
)
from mlip_autopipec.infrastructure.rundir.records import PendingRun
from mlip_autopipec.infrastructure.trainer import after_fit as module
from mlip_autopipec.infrastructure.trainer.after_fit import FitEnd, after_fit
from mlip_autopipec.infrastructure.trainer.batch import runner as batch
from mlip_autopipec.infrastructure.trainer.interrupted import finish, resume
from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.plan import PreparedRun
from mlip_autopipec.infrastructure.trainer.programs.steps import JobResult, StepOutcome

ITERATION = (
    "2026-01-01 00:00:0{n},000 - pyace.metrics_aggregator - INFO - Iteration   #{n}    (1 evals):"
    "        Loss: 1.0e+00 | RMSE Energy(low): 1.00 (1.00) meV/at | Forces(low): 1.00 (1.00) "
    "meV/A | Time/eval: 1.00 mcs/at"
)
EARLY = (
    "2026-01-01 00:00:09,000 - pyace.generalfit - INFO - EARLY STOPPING: Too small or even "
    "positive TEST loss change (best=-1.96e-02  / iter, ...) within last 10 iterations. Stopping"
)
ESTIMATE = FitCost(estimated_s_per_iteration=1.0, estimated_iterations=10, estimated_total_s=10.0)

#: The ways a fit ends, as each route hands them to after_fit; what potential.json must say of
#: its end, and whether a cost is measured (nothing is fitted by ``finish``).
ENDS: dict[str, tuple[FitEnd, FitStop | None, bool]] = {
    "train (early stop)": (
        FitEnd(JobResult(steps=[]), started=datetime(2026, 1, 1)),
        FitStop(stopped_at_iteration=5, early_stop=True),
        True,
    ),
    "batch job": (
        FitEnd(JobResult(steps=[])),
        FitStop(stopped_at_iteration=5, early_stop=True),
        True,
    ),
    "train --resume": (
        FitEnd(JobResult(steps=[]), started=datetime(2026, 1, 1), resumed_from=20),
        FitStop(stopped_at_iteration=25, resumed_from_iteration=20, early_stop=True),
        True,
    ),
    "finish": (
        FitEnd(JobResult(steps=[]), resumed_from=20, interim_at=23),
        FitStop(stopped_at_iteration=23, finished_from="interim", resumed_from_iteration=20),
        False,
    ),
}


def _predictions(symbols: list[str]) -> PredictionArrays:
    n = len(symbols)
    return PredictionArrays(
        names=np.array(["a"]),
        n_atoms=np.array([n]),
        energy_reference=np.array([1.0]),
        energy_predicted=np.array([1.01]),
        force_reference=np.zeros((n, 3)),
        force_predicted=np.full((n, 3), 0.01),
        symbols=np.array(symbols),
    )


@pytest.fixture
def prepared(tmp_path: Path, cu_pt_dataset: Dataset) -> PreparedRun:
    """A run directory as pacemaker leaves it, as far as after_fit reads it: its log (5
    iterations, then pacemaker's early stop) and a pacemaker step that took 5 s."""
    lines = [ITERATION.format(n=n) for n in range(1, 6)] + [EARLY]
    (tmp_path / PACEMAKER_LOG).write_text("\n".join(lines) + "\n")
    run = PendingRun(
        elements=("Cu", "Pt"),
        baseline=NoBaseline(),
        reference_energies={"Cu": -3.0, "Pt": -5.0},
        shortest_distances=[("Cu", "Cu", 2.3)],
        selection=None,
        provenance=Provenance(data_sha256=None, config_sha256=None),
        estimate=ESTIMATE,
    )
    return PreparedRun(tmp_path, run, cu_pt_dataset, None)


@pytest.fixture
def no_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    """pacemaker's outputs and the programs after it, faked: a test set with two Cu atoms."""
    outputs = {
        TRAIN_PREDICTIONS: _predictions(["Cu", "Pt"] * 20),
        TEST_PREDICTIONS: _predictions(["Cu", "Cu"]),
    }
    monkeypatch.setattr(module, "read_fit", lambda prepared, fit: outputs)
    monkeypatch.setattr(module, "convert_to_yace", lambda prepared, profile: "potential.yace")
    passed = SafetyReport(dimer_checks=(), compression_checks=())

    def gate(potential: Potential, *args: Any) -> tuple[Potential, SafetyReport]:
        return potential, passed

    monkeypatch.setattr(module, "gate_potential", gate)


class _Profile:
    """The steps after_fit names, without programs."""

    def step(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@pytest.mark.parametrize("way", list(ENDS))
@pytest.mark.usefixtures("no_programs")
def test_every_end_is_recorded_with_its_cost_test_set_and_report(
    way: str, prepared: PreparedRun, caplog: pytest.LogCaptureFixture
) -> None:
    end, expected_stop, measured = ENDS[way]
    seconds = StepOutcome(name="pacemaker", required=True, succeeded=True, seconds=5.0)
    end = FitEnd(JobResult(steps=[seconds]), end.started, end.resumed_from, end.interim_at)
    reported: list[Path] = []
    config = parse_trainer_config({"type": "pacemaker", "cutoff": 5.0})
    with caplog.at_level(logging.INFO, logger="mlip_autopipec"):
        potential = after_fit(config, prepared, end, _Profile(), reported.append)  # type: ignore[arg-type]
    # How it stopped (pacemaker's early stop, a resumed fit, an interim potential).
    assert potential.fit_stop == expected_stop
    with warnings.catch_warnings():  # an interim potential is loaded with a warning
        warnings.simplefilter("ignore", UserWarning)
        assert Potential.load(prepared.workdir).fit_stop == expected_stop
    # What it cost beside the estimate (5 iterations in pacemaker's log), unless nothing was fitted.
    if measured:
        assert potential.cost is not None and potential.cost.iterations == 5
        assert potential.cost.estimated_s_per_iteration == 1.0
    else:
        assert potential.cost is None
    # A test set with 2 atoms of Cu and none of Pt says little about them.
    assert "the test set holds few atoms of Cu (2), Pt (0)" in caplog.text
    assert reported == [prepared.workdir]


def _calls(function: Callable[..., object]) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }


@pytest.mark.parametrize(
    "route",
    [PacemakerTrainer.fit, batch.wait, resume.resume_fit, finish.finish_interim],
    ids=["train", "batch wait", "train --resume", "finish"],
)
def test_every_way_a_fit_ends_goes_through_the_one_path(route: Callable[..., object]) -> None:
    called = _calls(route)
    assert "after_fit" in called and "FitEnd" in called
    # None of them reads pacemaker's outputs or records the end on its own.
    assert not called & {"read_fit", "early_stop_record", "cost_of_steps", "measured_cost"}


def test_a_resumed_end_counts_the_iterations_before_it(tmp_path: Path) -> None:
    (tmp_path / PACEMAKER_LOG).write_text(
        ITERATION.format(n=1) + "\n" + ITERATION.format(n=2) + "\n"
    )
    stop = module.fit_stop(FitEnd(JobResult(steps=[]), resumed_from=7), tmp_path / PACEMAKER_LOG)
    assert stop == FitStop(stopped_at_iteration=9, resumed_from_iteration=7, early_stop=False)
    assert module.fit_stop(FitEnd(JobResult(steps=[])), tmp_path / PACEMAKER_LOG) is None
