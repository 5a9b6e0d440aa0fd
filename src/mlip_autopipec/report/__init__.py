"""The training report of a run: parity plots, error histograms, learning curve, metrics, HTML.

``build_report`` is the entry point; ``predictions`` reads what the run wrote, ``plots`` draws,
``metrics`` writes ``metrics.json`` and ``html`` the page.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mlip_autopipec.analysis.parity import energy_parity, force_parity
from mlip_autopipec.files import atomic_path
from mlip_autopipec.infrastructure.rundir.files import (
    TEST_METRICS_TXT,
    TEST_PREDICTIONS_NPZ,
    TRAIN_METRICS_TXT,
    TRAIN_PREDICTIONS_NPZ,
)
from mlip_autopipec.report.html import render_html
from mlip_autopipec.report.metrics import metrics_record
from mlip_autopipec.report.plots import (
    DIMERS_PNG,
    ERROR_HISTOGRAMS_PNG,
    LEARNING_CURVE_PNG,
    PARITY_ENERGY_PNG,
    PARITY_FORCES_PNG,
    PLOT_FILES,
    Report,
    add_dimers,
    add_learning_curve,
    add_plot,
    plot_error_histograms,
)
from mlip_autopipec.report.predictions import (
    load_potential,
    read_all_predictions,
    read_learning_curve,
)

__all__ = [
    "DIMERS_PNG",
    "ERROR_HISTOGRAMS_PNG",
    "LEARNING_CURVE_PNG",
    "METRICS_JSON",
    "PARITY_ENERGY_PNG",
    "PARITY_FORCES_PNG",
    "REPORT_DIR",
    "REPORT_HTML",
    "build_report",
    "build_report_or_warn",
]

log = logging.getLogger(__name__)

#: Our report's folder in the run directory; pacemaker writes its own PNGs into ``report/``.
REPORT_DIR = Path("report") / "mlip_autopipec"
REPORT_HTML = "report.html"
METRICS_JSON = "metrics.json"
#: Every file the report writes; all are removed first so none is left from an earlier report.
REPORT_FILES = (REPORT_HTML, METRICS_JSON, *PLOT_FILES)


def build_report(run_dir: Path, *, compute_dimers: bool = False) -> Path:
    """Write the training report of a run into ``RUN_DIR/report/mlip_autopipec/``.

    Draws parity plots, error histograms and the learning curve from pacemaker's outputs
    (its predictions in the safe ``.npz`` copies the trainer made; no pickle is read),
    writes ``metrics.json`` (errors of the final potential in meV/atom and meV/Å, from the
    same prediction files and function as ``potential.json``) and one self-contained
    ``report.html``. Dimer curves are computed from the potential only with
    ``compute_dimers``; otherwise the trainer's ``dimers.png`` is shown, if any. Missing
    files (a partial run) leave a note in the report instead of failing. Returns the HTML path.
    """
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run directory")
    out = run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        (out / name).unlink(missing_ok=True)
    report = Report(run_dir, out)

    # 1. The record and the final potential's predictions on the train and test sets.
    potential = load_potential(run_dir, report.notes)
    predictions = read_all_predictions(run_dir, report.notes)
    if (
        not any(p.label == "test" for p in predictions)
        and (run_dir / TRAIN_PREDICTIONS_NPZ).exists()
    ):
        report.notes.append(f"no test set ({TEST_PREDICTIONS_NPZ} is absent): train only")

    # 2. Plots, each skipped with a note when its inputs are missing.
    add_plot(report, predictions, energy_parity, PARITY_ENERGY_PNG)
    add_plot(report, predictions, force_parity, PARITY_FORCES_PNG)
    add_plot(report, predictions, plot_error_histograms, ERROR_HISTOGRAMS_PNG)
    curves = {
        label: read_learning_curve(run_dir / name)
        for label, name in (("train", TRAIN_METRICS_TXT), ("test", TEST_METRICS_TXT))
    }
    add_learning_curve(report, curves)
    add_dimers(report, potential, compute_dimers)

    # 3. metrics.json, then the page that shows everything.
    metrics = metrics_record(report.notes, potential, predictions, curves)
    _write_utf8(out / METRICS_JSON, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    html_path = out / REPORT_HTML
    _write_utf8(html_path, render_html(report, potential, metrics))
    return html_path


def build_report_or_warn(run_dir: Path) -> Path | None:
    """``build_report`` after a fit: a failure (plotting, a missing file) is logged as a
    warning and returns None; a finished potential stands without its report."""
    try:
        path = build_report(run_dir)
    except Exception as error:
        log.warning("no training report for %s: %s", run_dir, error)
        return None
    log.info("training report: %s", path)
    return path


def _write_utf8(path: Path, text: str) -> None:
    """Write ``text`` atomically as UTF-8 (units hold Å), whatever the locale."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
