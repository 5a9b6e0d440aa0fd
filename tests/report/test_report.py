"""The training report, built from a recorded pacemaker run (tests/data/recorded_run)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase.calculators.emt import EMT

from mlip_autopipec.analysis.dimers import DimerCurve, plot_dimer_curves
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.pacemaker.outputs import read_prediction_metrics
from mlip_autopipec.infrastructure.rundir.files import TEST_PREDICTIONS_NPZ, TRAIN_PREDICTIONS_NPZ
from mlip_autopipec.report import (
    DIMERS_PNG,
    ERROR_HISTOGRAMS_PNG,
    LEARNING_CURVE_PNG,
    METRICS_JSON,
    PARITY_ENERGY_PNG,
    PARITY_FORCES_PNG,
    REPORT_DIR,
    build_report,
    build_report_or_warn,
)

RECORDED_RUN = Path(__file__).parents[1] / "data" / "recorded_run"
PLOTS = (PARITY_ENERGY_PNG, PARITY_FORCES_PNG, ERROR_HISTOGRAMS_PNG, LEARNING_CURVE_PNG)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(RECORDED_RUN, tmp_path / "run"))


def _metrics(html_path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((html_path.parent / METRICS_JSON).read_text("utf-8"))
    return result


def _assert_embedded(html_path: Path, names: tuple[str, ...]) -> None:
    text = html_path.read_text("utf-8")
    for name in names:
        data = (html_path.parent / name).read_bytes()
        assert data.startswith(b"\x89PNG"), name
        assert f"data:image/png;base64,{base64.b64encode(data).decode()}" in text, name
        assert f'data-file="{name}"' in text


def test_a_full_run_gives_every_plot_embedded_in_one_page(run_dir: Path) -> None:
    pacemaker_plot = run_dir / "report" / "train_EF-pairplots.png"  # pacemaker's own report
    pacemaker_plot.parent.mkdir()
    pacemaker_plot.write_bytes(b"\x89PNG pacemaker")

    html_path = build_report(run_dir)

    assert html_path == run_dir / REPORT_DIR / "report.html"
    _assert_embedded(html_path, PLOTS)
    assert pacemaker_plot.read_bytes() == b"\x89PNG pacemaker"
    text = html_path.read_text("utf-8")
    assert "<script" not in text and "<link" not in text and 'src="http' not in text
    assert "FinnisSinclairShiftedScaled" in text  # input.yaml
    provenance = json.loads((run_dir / "potential.json").read_text())["provenance"]
    assert provenance["data_sha256"] in text and provenance["config_sha256"] in text
    assert "python-ace" in text and "0.4.0rc1" in text
    assert "no dimers.png" in text  # neither computed nor left by the trainer: a note


def test_metrics_json_holds_exactly_the_metrics_of_potential_json(run_dir: Path) -> None:
    recorded = json.loads((run_dir / "potential.json").read_text())

    metrics = _metrics(build_report(run_dir))

    assert metrics["train"] == recorded["train_metrics"]
    assert metrics["test"] == recorded["test_metrics"]
    for label, name in (("train", TRAIN_PREDICTIONS_NPZ), ("test", TEST_PREDICTIONS_NPZ)):
        assert metrics[label] == read_prediction_metrics(run_dir / name).model_dump(mode="json")
        assert metrics[f"{label}_source"] == name
    assert set(metrics["force_by_element"]["train"]) == {"Cu", "Pt"}
    curve = metrics["learning_curve"]
    assert curve["train"]["iteration"][-1] == 300
    assert curve["test"]["iteration"][:3] == [0, 10, 20]


def test_a_run_without_a_test_set_reports_train_only(run_dir: Path) -> None:
    (run_dir / TEST_PREDICTIONS_NPZ).unlink()
    (run_dir / "test_metrics.txt").unlink()
    record = json.loads((run_dir / "potential.json").read_text())
    record["test_metrics"] = None
    (run_dir / "potential.json").write_text(json.dumps(record))

    html_path = build_report(run_dir)

    _assert_embedded(html_path, PLOTS)
    metrics = _metrics(html_path)
    assert metrics["test"] is None
    assert metrics["train"] == record["train_metrics"]
    assert metrics["learning_curve"]["test"] is None
    assert "no test set" in html_path.read_text("utf-8")


def test_a_missing_metrics_file_skips_the_learning_curve_with_a_note(run_dir: Path) -> None:
    (run_dir / "metrics.txt").unlink()

    html_path = build_report(run_dir)

    assert not (html_path.parent / LEARNING_CURVE_PNG).exists()
    _assert_embedded(html_path, PLOTS[:3])
    assert "metrics.txt is missing" in html_path.read_text("utf-8")


def test_a_partial_run_still_gives_a_report(run_dir: Path) -> None:
    for path in run_dir.iterdir():
        if path.name != "input.yaml":
            path.unlink()
    (run_dir / "metrics.txt").write_text("ladder_step cycle_step iter_num loss\n")  # header only

    html_path = build_report(run_dir)

    assert not any((html_path.parent / name).exists() for name in PLOTS)
    metrics = _metrics(html_path)
    assert metrics["train"] is None and metrics["test"] is None
    text = html_path.read_text("utf-8")
    assert "no potential.json" in text and "no train_predictions.npz" in text
    assert "FinnisSinclairShiftedScaled" in text


def test_without_predictions_the_metrics_come_from_potential_json(run_dir: Path) -> None:
    (run_dir / TEST_PREDICTIONS_NPZ).unlink()
    recorded = json.loads((run_dir / "potential.json").read_text())

    metrics = _metrics(build_report(run_dir))

    assert metrics["test"] == recorded["test_metrics"]
    assert metrics["test_source"] == "potential.json"


def test_the_trainers_dimer_plot_is_reused(run_dir: Path) -> None:
    distances = np.arange(0.5, 5.001, 0.01)
    curve = DimerCurve(
        pair=("Cu", "Pt"), distances=distances.tolist(), energies=np.exp(-distances).tolist()
    )
    plot_dimer_curves([curve], {("Cu", "Pt"): 2.2}, run_dir / "dimers.png")

    html_path = build_report(run_dir)

    _assert_embedded(html_path, (*PLOTS, DIMERS_PNG))
    assert (html_path.parent / DIMERS_PNG).read_bytes() == (run_dir / "dimers.png").read_bytes()


def test_dimer_curves_are_computed_on_request(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EMT (Cu, Pt) stands in for the ACE potential, whose .yace the recorded run does not keep.
    monkeypatch.setattr(Potential, "ase_calculator", lambda self, extrapolation=False: EMT())

    html_path = build_report(run_dir, compute_dimers=True)

    _assert_embedded(html_path, (*PLOTS, DIMERS_PNG))
    assert not (run_dir / "dimers.png").exists()  # the trainer's file is not written


def test_iterations_run_on_through_later_fit_cycles(run_dir: Path) -> None:
    lines = (run_dir / "metrics.txt").read_text().splitlines()
    second_cycle = [line.replace("0           0 ", "0           1 ", 1) for line in lines[1:]]
    (run_dir / "metrics.txt").write_text("\n".join([*lines, *second_cycle]) + "\n")

    iterations = _metrics(build_report(run_dir))["learning_curve"]["train"]["iteration"]

    assert iterations[-1] == 300 + 1 + 300
    assert iterations == sorted(iterations)


def test_a_report_that_fails_after_a_fit_is_a_warning_not_an_error(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert build_report_or_warn(run_dir) == run_dir / REPORT_DIR / "report.html"

    def broken_plot(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no display")

    monkeypatch.setattr("mlip_autopipec.report.render_html", broken_plot)
    assert build_report_or_warn(run_dir) is None
    assert f"no training report for {run_dir}: no display" in caplog.text
