"""The training report: parity plots, error histograms, learning curve, metrics and HTML."""

from __future__ import annotations

import base64
import html
import json
import logging
import shutil
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlip_autopipec.analysis.dimers import DIMERS_PNG as RUN_DIMERS_PNG
from mlip_autopipec.domain_models.potential import (
    POTENTIAL_JSON,
    FitMetrics,
    Potential,
    rmse_mae_mev,
)
from mlip_autopipec.files import atomic_path
from mlip_autopipec.infrastructure.trainer.fit_record import cost_rows
from mlip_autopipec.infrastructure.trainer.input_yaml import INPUT_YAML
from mlip_autopipec.infrastructure.trainer.outputs import (
    TEST_METRICS_TXT,
    TEST_PREDICTIONS_NPZ,
    TRAIN_METRICS_TXT,
    TRAIN_PREDICTIONS_NPZ,
    PredictionArrays,
    read_predictions,
)

log = logging.getLogger(__name__)

#: Our report's folder in the run directory; pacemaker writes its own PNGs into ``report/``.
REPORT_DIR = Path("report") / "mlip_autopipec"
REPORT_HTML = "report.html"
METRICS_JSON = "metrics.json"
PARITY_ENERGY_PNG = "parity_energy.png"
PARITY_FORCES_PNG = "parity_forces.png"
ERROR_HISTOGRAMS_PNG = "error_histograms.png"
LEARNING_CURVE_PNG = "learning_curve.png"
DIMERS_PNG = "dimers.png"
#: Every file the report writes; all are removed first so none is left from an earlier report.
REPORT_FILES = (
    REPORT_HTML,
    METRICS_JSON,
    PARITY_ENERGY_PNG,
    PARITY_FORCES_PNG,
    ERROR_HISTOGRAMS_PNG,
    LEARNING_CURVE_PNG,
    DIMERS_PNG,
)
LEARNING_CURVE_COLUMNS = ("iter_num", "loss", "rmse_epa", "rmse_f_comp")
DPI = 110
SET_STYLE = {"train": ("tab:blue", "o"), "test": ("tab:orange", "^")}


@dataclass(frozen=True)
class Predictions:
    """The final potential's predictions on one set (train or test), as pacemaker made them.

    Energies are per atom (eV/atom) of ``energy_corrected`` (labels minus reference energies and
    baseline: what pacemaker fits); forces are components (eV/Å), one row per atom.
    """

    label: str
    metrics: FitMetrics
    energy_reference: np.ndarray
    energy_predicted: np.ndarray
    force_reference: np.ndarray
    force_predicted: np.ndarray
    symbols: np.ndarray | None  # element of each force row; None: unknown

    def errors_mev(self, quantity: str) -> np.ndarray:
        """ACE minus reference: energies per atom (meV/atom) or force components (meV/Å)."""
        if quantity == "energy":
            error = self.energy_predicted - self.energy_reference
        else:
            error = self.force_predicted - self.force_reference
        return np.asarray(1000 * error, dtype=float).ravel()


@dataclass
class _Plot:
    """One plot of the report: its file once drawn, else a note why it is missing."""

    title: str
    file: str
    caption: str
    path: Path | None = None
    note: str | None = None


@dataclass
class _Report:
    run_dir: Path
    out: Path
    notes: list[str] = field(default_factory=list)
    plots: list[_Plot] = field(default_factory=list)


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
    report = _Report(run_dir, out)

    # 1. The record and the final potential's predictions on the train and test sets.
    potential = _load_potential(report)
    predictions = _read_all_predictions(report)
    if (
        not any(p.label == "test" for p in predictions)
        and (run_dir / TRAIN_PREDICTIONS_NPZ).exists()
    ):
        report.notes.append(f"no test set ({TEST_PREDICTIONS_NPZ} is absent): train only")

    # 2. Plots, each skipped with a note when its inputs are missing.
    _add_plot(report, predictions, _plot_energy_parity, PARITY_ENERGY_PNG)
    _add_plot(report, predictions, _plot_force_parity, PARITY_FORCES_PNG)
    _add_plot(report, predictions, _plot_error_histograms, ERROR_HISTOGRAMS_PNG)
    curves = {
        label: _read_learning_curve(run_dir / name)
        for label, name in (("train", TRAIN_METRICS_TXT), ("test", TEST_METRICS_TXT))
    }
    _add_learning_curve(report, curves)
    _add_dimers(report, potential, compute_dimers)

    # 3. metrics.json, then the page that shows everything.
    metrics = _metrics_record(report, potential, predictions, curves)
    _write_utf8(out / METRICS_JSON, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    html_path = out / REPORT_HTML
    _write_utf8(html_path, _render_html(report, potential, metrics))
    return html_path


def _write_utf8(path: Path, text: str) -> None:
    """Write ``text`` atomically as UTF-8 (units hold Å), whatever the locale."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


# -- reading --------------------------------------------------------------------------------------


def _load_potential(report: _Report) -> Potential | None:
    path = report.run_dir / POTENTIAL_JSON
    if not path.exists():
        report.notes.append(f"no {POTENTIAL_JSON}: the run did not finish")
        return None
    try:
        return Potential.load(path)
    except ValueError as error:  # invalid JSON or record
        report.notes.append(f"{POTENTIAL_JSON} is unreadable: {error}")
        return None


def _read_all_predictions(report: _Report) -> list[Predictions]:
    """The safe (``.npz``) copies of pacemaker's predictions; its pickles are never read."""
    predictions = []
    for label, name in (("train", TRAIN_PREDICTIONS_NPZ), ("test", TEST_PREDICTIONS_NPZ)):
        path = report.run_dir / name
        if not path.exists():
            if label == "train":
                report.notes.append(f"no {name}: pacemaker did not finish its fit")
            continue
        try:
            arrays = read_predictions(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            report.notes.append(f"{name} is unreadable ({type(error).__name__}: {error})")
            continue
        predictions.append(_predictions(label, arrays))
    return predictions


def _predictions(label: str, arrays: PredictionArrays) -> Predictions:
    """Per-atom energies and force rows of one set; its metrics as the trainer computes them."""
    return Predictions(
        label=label,
        metrics=arrays.metrics,
        energy_reference=arrays.energy_reference / arrays.n_atoms,
        energy_predicted=arrays.energy_predicted / arrays.n_atoms,
        force_reference=arrays.force_reference,
        force_predicted=arrays.force_predicted,
        symbols=arrays.symbols if len(arrays.symbols) else None,
    )


def _read_learning_curve(path: Path) -> pd.DataFrame | None:
    """pacemaker's ``metrics.txt``-style table, or None when it is missing, empty or unreadable."""
    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path, sep=r"\s+")
    except (OSError, ValueError) as error:  # pandas' parser errors are ValueErrors
        log.warning("cannot read %s: %s", path, error)
        return None
    if frame.empty or not set(LEARNING_CURVE_COLUMNS) <= set(frame.columns):
        return None
    return frame


def _iterations(frame: pd.DataFrame, offsets: dict[tuple[int, int], int]) -> np.ndarray:
    """Iteration numbers counted through all ladder steps and cycles (iter_num restarts in each)."""
    iterations = frame["iter_num"].to_numpy(dtype=int)
    if not {"ladder_step", "cycle_step"} <= set(frame.columns):
        return iterations
    keys = zip(frame["ladder_step"], frame["cycle_step"], strict=True)
    return np.array(
        [i + offsets.get((int(a), int(b)), 0) for i, (a, b) in zip(iterations, keys, strict=True)]
    )


def _iteration_offsets(frame: pd.DataFrame) -> dict[tuple[int, int], int]:
    if not {"ladder_step", "cycle_step"} <= set(frame.columns):
        return {}
    offsets: dict[tuple[int, int], int] = {}
    total = 0
    steps = frame[["ladder_step", "cycle_step", "iter_num"]].to_numpy(dtype=int)
    for ladder, cycle in dict.fromkeys(map(tuple, steps[:, :2].tolist())):
        in_step = (steps[:, 0] == ladder) & (steps[:, 1] == cycle)
        offsets[(ladder, cycle)] = total
        total += int(steps[in_step, 2].max()) + 1
    return offsets


# -- plots ----------------------------------------------------------------------------------------


def _new_figure(columns: int, *, width: float = 5.2, height: float = 4.6) -> Figure:
    figure = Figure(figsize=(width * columns, height), layout="constrained")
    FigureCanvasAgg(figure)  # Agg, without pyplot: no global figure list to leak into
    return figure


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI)
    return path


def _add_plot(
    report: _Report,
    predictions: Sequence[Predictions],
    draw: Callable[[Sequence[Predictions]], Figure],
    file: str,
) -> None:
    title, caption = _PLOT_TEXT[file]
    plot = _Plot(title, file, caption)
    if predictions:
        plot.path = _save(draw(predictions), report.out / file)
    else:
        plot.note = f"not drawn: no predictions ({TRAIN_PREDICTIONS_NPZ} is missing or unreadable)"
    report.plots.append(plot)


def _identity_line(axes: Axes, values: Iterable[np.ndarray]) -> None:
    stacked = np.concatenate([np.ravel(v) for v in values])
    low, high = float(stacked.min()), float(stacked.max())
    pad = 0.04 * (high - low or 1.0)
    limits = (low - pad, high + pad)
    axes.plot(limits, limits, color="grey", linestyle="--", linewidth=1, label="y = x", zorder=0)
    axes.set_xlim(limits)
    axes.set_ylim(limits)
    axes.set_aspect("equal")


def _plot_energy_parity(predictions: Sequence[Predictions]) -> Figure:
    figure = _new_figure(1, width=6.0, height=5.6)
    axes = figure.add_subplot()
    for p in predictions:
        colour, marker = SET_STYLE[p.label]
        m = p.metrics
        axes.scatter(
            p.energy_reference,
            p.energy_predicted,
            s=22,
            color=colour,
            marker=marker,
            alpha=0.75,
            label=f"{p.label} ({len(p.energy_reference)} structures): "
            f"RMSE {m.energy_rmse_mev_per_atom:.2f}, MAE {m.energy_mae_mev_per_atom:.2f} meV/atom",
        )
    _identity_line(axes, [v for p in predictions for v in (p.energy_reference, p.energy_predicted)])
    axes.set_title("Energy per atom: ACE vs reference")
    axes.set_xlabel("reference energy, corrected (eV/atom)")
    axes.set_ylabel("ACE energy (eV/atom)")
    axes.legend(loc="upper left", fontsize="small")
    axes.grid(alpha=0.3)
    return figure


def _zoom_inset(axes: Axes, values: np.ndarray) -> Axes:
    """An inset of ``axes`` over the central 98 % of ``values``, where most points lie."""
    half_width = float(np.quantile(np.abs(values), 0.98)) or 1.0
    limits = (-1.05 * half_width, 1.05 * half_width)
    inset = axes.inset_axes((0.6, 0.06, 0.37, 0.37))
    inset.plot(limits, limits, color="grey", linestyle="--", linewidth=1, zorder=0)
    inset.set_xlim(limits)
    inset.set_ylim(limits)
    inset.set_title("zoom: 98 % of components", fontsize="x-small")
    inset.tick_params(labelsize="x-small")
    inset.grid(alpha=0.3)
    return inset


def _plot_force_parity(predictions: Sequence[Predictions]) -> Figure:
    figure = _new_figure(len(predictions), width=5.6, height=5.6)
    elements = sorted({str(s) for p in predictions if p.symbols is not None for s in p.symbols})
    colours = {element: f"C{index}" for index, element in enumerate(elements)}
    values = [v for p in predictions for v in (p.force_reference, p.force_predicted)]
    for index, p in enumerate(predictions):
        axes = figure.add_subplot(1, len(predictions), index + 1)
        groups: list[tuple[str, np.ndarray, str]] = (
            [(e, p.symbols == e, colours[e]) for e in elements if (p.symbols == e).any()]
            if p.symbols is not None
            else [("all atoms", np.ones(len(p.force_reference), dtype=bool), "C0")]
        )
        point_colours = np.empty(p.force_reference.shape, dtype=object)
        for element, mask, colour in groups:
            error = (p.force_predicted[mask] - p.force_reference[mask]).ravel()
            rmse, mae = rmse_mae_mev(error)
            point_colours[mask] = colour
            label = f"{element} ({error.size} comp.): RMSE {rmse:.1f}, MAE {mae:.1f} meV/Å"
            axes.scatter([], [], s=12, color=colour, label=label)  # legend entry only
        # One scatter in a fixed random order, so no element hides under another.
        order = np.random.default_rng(0).permutation(p.force_reference.size)
        reference = p.force_reference.ravel()[order]
        predicted = p.force_predicted.ravel()[order]
        colours_in_order = point_colours.ravel()[order].tolist()
        for target in (axes, _zoom_inset(axes, reference)):
            target.scatter(
                reference,
                predicted,
                s=6,
                c=colours_in_order,
                alpha=0.5,
                linewidths=0,
                rasterized=True,
            )
        _identity_line(axes, values)
        m = p.metrics
        axes.set_title(
            f"{p.label}: force components\nRMSE {m.force_rmse_mev_per_angstrom:.1f}, "
            f"MAE {m.force_mae_mev_per_angstrom:.1f} meV/Å"
        )
        axes.set_xlabel("reference force component (eV/Å)")
        axes.set_ylabel("ACE force component (eV/Å)")
        axes.legend(loc="upper left", fontsize="small")
        axes.grid(alpha=0.3)
    return figure


def _plot_error_histograms(predictions: Sequence[Predictions]) -> Figure:
    figure = _new_figure(2, width=5.8, height=4.4)
    energy_axes, force_axes = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    panels = (
        (energy_axes, "energy", "energy per atom", "meV/atom", "structures", 15),
        (force_axes, "forces", "force components", "meV/Å", "components", 60),
    )
    for axes, quantity, what, unit, counted, n_bins in panels:
        errors = {p.label: p.errors_mev(quantity) for p in predictions}
        everything = np.concatenate(list(errors.values()))
        low, high = float(everything.min()), float(everything.max())
        if high - low < 1e-9:  # all errors equal: give the single bar a width
            low, high = low - 0.5, high + 0.5
        bins = np.linspace(low, high, n_bins + 1).tolist()
        for label, error in errors.items():
            colour, _ = SET_STYLE[label]
            rmse = float(np.sqrt(np.mean(error**2)))
            axes.hist(
                error,
                bins=bins,
                weights=np.full(error.size, 1.0 / error.size),
                histtype="stepfilled",
                alpha=0.35,
                color=colour,
                edgecolor=colour,
                linewidth=1.2,
                label=f"{label}: RMSE {rmse:.1f}, MAE {np.mean(np.abs(error)):.1f} {unit}",
            )
        axes.axvline(0.0, color="grey", linewidth=0.8)
        axes.set_ylim(0.0, 1.3 * axes.get_ylim()[1])  # room for the legend
        axes.set_title(f"Error of {what} (ACE - reference)")
        axes.set_xlabel(f"error ({unit})")
        axes.set_ylabel(f"fraction of {counted}")
        axes.legend(fontsize="small")
        axes.grid(alpha=0.3)
    return figure


def _add_learning_curve(report: _Report, curves: dict[str, pd.DataFrame | None]) -> None:
    title, caption = _PLOT_TEXT[LEARNING_CURVE_PNG]
    plot = _Plot(title, LEARNING_CURVE_PNG, caption)
    report.plots.append(plot)
    if curves["train"] is None:
        plot.note = f"not drawn: {TRAIN_METRICS_TXT} is missing, empty or unreadable"
        return
    if curves["test"] is None:
        plot.caption += f" No test curve: {TEST_METRICS_TXT} is missing or empty."
    offsets = _iteration_offsets(curves["train"])
    figure = _new_figure(3, width=4.8, height=4.2)
    panels = (
        ("loss", 1.0, "loss (dimensionless)", "Loss"),
        ("rmse_epa", 1000.0, "energy RMSE (meV/atom)", "Energy RMSE per atom"),
        ("rmse_f_comp", 1000.0, "force RMSE (meV/Å)", "Force component RMSE"),
    )
    for index, (column, scale, ylabel, panel_title) in enumerate(panels):
        axes = figure.add_subplot(1, 3, index + 1)
        for label, frame in curves.items():
            if frame is None:
                continue
            colour, marker = SET_STYLE[label]
            axes.plot(
                _iterations(frame, offsets),
                scale * frame[column].to_numpy(dtype=float),
                color=colour,
                marker=marker if label == "test" else None,
                markersize=3,
                linewidth=1.3,
                label=label,
            )
        axes.set_yscale("log")
        axes.set_title(panel_title)
        axes.set_xlabel("iteration")
        axes.set_ylabel(ylabel)
        axes.legend()
        axes.grid(alpha=0.3, which="both")
    plot.path = _save(figure, report.out / LEARNING_CURVE_PNG)


def _add_dimers(report: _Report, potential: Potential | None, compute: bool) -> None:
    title, caption = _PLOT_TEXT[DIMERS_PNG]
    plot = _Plot(title, DIMERS_PNG, caption)
    report.plots.append(plot)
    path = report.out / DIMERS_PNG
    if compute:
        if potential is None:
            plot.note = f"not computed: no readable {POTENTIAL_JSON}"
            return
        try:
            plot.path = _compute_dimers(potential, path, report)
        except (ValueError, ImportError, RuntimeError) as error:
            plot.note = f"not computed: {error}"
        return
    trainer_plot = report.run_dir / RUN_DIMERS_PNG
    if trainer_plot.exists():
        shutil.copyfile(trainer_plot, path)
        plot.path = path
        plot.caption += f" (the trainer's {RUN_DIMERS_PNG})"
    else:
        plot.note = (
            f"not available: the run has no {RUN_DIMERS_PNG}; "
            "build the report with compute_dimers (mlip-autopipec report --dimers) to compute it"
        )


def _compute_dimers(potential: Potential, path: Path, report: _Report) -> Path:
    from mlip_autopipec.analysis.dimers import check_short_range

    # The shortest distances of the data, as the trainer's check recorded them.
    distances = {
        check.pair: check.shortest_distance_in_data
        for check in potential.dimer_checks
        if check.shortest_distance_in_data is not None
    }
    if not distances:
        report.notes.append(f"dimers: {POTENTIAL_JSON} records no shortest distances of the data")
    calculator = potential.ase_calculator()
    check_short_range(calculator, potential.elements, potential.cutoff, distances, path)
    return path


_PLOT_TEXT = {
    PARITY_ENERGY_PNG: (
        "Parity: energy per atom",
        "Energies per atom of the final potential against the labels pacemaker fits "
        "(total energy minus per-element reference energies and the baseline, if any).",
    ),
    PARITY_FORCES_PNG: (
        "Parity: force components",
        "Every Cartesian force component of every atom, coloured by the atom's element.",
    ),
    ERROR_HISTOGRAMS_PNG: (
        "Error histograms",
        "Distribution of the final potential's errors; heights are fractions of each set.",
    ),
    LEARNING_CURVE_PNG: (
        "Learning curve",
        "pacemaker's loss and RMSEs per iteration (metrics.txt; test every display_step).",
    ),
    DIMERS_PNG: (
        "Isolated dimers",
        "E(r) of every element pair; it must rise as r falls below the data (dotted lines).",
    ),
}


# -- records --------------------------------------------------------------------------------------


def _metrics_record(
    report: _Report,
    potential: Potential | None,
    predictions: Sequence[Predictions],
    curves: dict[str, pd.DataFrame | None],
) -> dict[str, Any]:
    """metrics.json: the final errors (as in potential.json), per element, and the curves."""
    record: dict[str, Any] = {
        "units": {"energy": "meV/atom", "forces": "meV/Å (Cartesian components)"},
    }
    by_label = {p.label: p for p in predictions}
    for label in ("train", "test"):
        recorded = None if potential is None else getattr(potential, f"{label}_metrics")
        if label in by_label:
            metrics: FitMetrics | None = by_label[label].metrics
            source: str | None = TRAIN_PREDICTIONS_NPZ if label == "train" else TEST_PREDICTIONS_NPZ
            if recorded is not None and recorded != metrics:
                report.notes.append(
                    f"{POTENTIAL_JSON}'s {label} metrics differ from {source}: one is stale"
                )
        else:
            metrics, source = recorded, POTENTIAL_JSON if recorded is not None else None
        record[label] = None if metrics is None else metrics.model_dump(mode="json")
        record[f"{label}_source"] = source
    record["force_by_element"] = {
        p.label: _force_by_element(p) for p in predictions if p.symbols is not None
    }
    train_curve = curves["train"]
    offsets = {} if train_curve is None else _iteration_offsets(train_curve)
    record["learning_curve"] = {
        label: None
        if frame is None
        else {
            "iteration": _iterations(frame, offsets).tolist(),
            "loss": frame["loss"].astype(float).tolist(),
            "energy_rmse_mev_per_atom": (1000 * frame["rmse_epa"].astype(float)).tolist(),
            "force_rmse_mev_per_angstrom": (1000 * frame["rmse_f_comp"].astype(float)).tolist(),
        }
        for label, frame in curves.items()
    }
    return record


def _force_by_element(p: Predictions) -> dict[str, dict[str, float]]:
    """Force RMSE and MAE (meV/Å) over the atoms of each element."""
    assert p.symbols is not None
    result = {}
    for element in sorted(set(p.symbols.tolist())):
        mask = p.symbols == element
        error = p.force_predicted[mask] - p.force_reference[mask]
        rmse, mae = rmse_mae_mev(error)
        result[element] = {
            "force_rmse_mev_per_angstrom": rmse,
            "force_mae_mev_per_angstrom": mae,
            "n_atoms": int(mask.sum()),
        }
    return result


# -- HTML -----------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { background: #fff6d6; border-left: 4px solid #e0b000; padding: 0.4em 0.8em; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], text_columns: int = 1) -> str:
    def cells(values: Sequence[object], tag: str) -> str:
        return "".join(
            f"<{tag}{' class=text' if i < text_columns else ''}>{_e(v)}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return f"<table><tr>{cells(header, 'th')}</tr>{body}</table>"


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = []
    for label in ("train", "test"):
        m = metrics[label]
        if m is None:
            continue
        rows.append(
            [
                label,
                f"{m['energy_rmse_mev_per_atom']:.2f}",
                f"{m['energy_mae_mev_per_atom']:.2f}",
                f"{m['force_rmse_mev_per_angstrom']:.1f}",
                f"{m['force_mae_mev_per_angstrom']:.1f}",
                "-" if m["n_structures"] is None else m["n_structures"],
                metrics[f"{label}_source"],
            ]
        )
    if not rows:
        return '<p class="note">No metrics: neither predictions nor a record of them.</p>'
    header = (
        "set",
        "energy RMSE (meV/atom)",
        "energy MAE (meV/atom)",
        "force RMSE (meV/Å)",
        "force MAE (meV/Å)",
        "structures",
        "source",
    )
    table = _table(header, rows)
    per_element = [
        [
            label,
            element,
            f"{v['force_rmse_mev_per_angstrom']:.1f}",
            f"{v['force_mae_mev_per_angstrom']:.1f}",
            v["n_atoms"],
        ]
        for label, elements in metrics["force_by_element"].items()
        for element, v in elements.items()
    ]
    if per_element:
        element_header = ("set", "element", "force RMSE (meV/Å)", "force MAE (meV/Å)", "atoms")
        table += "<h3>Forces by element</h3>" + _table(element_header, per_element, 2)
    return table


def _plot_html(plot: _Plot) -> str:
    heading = f"<h3>{_e(plot.title)}</h3>"
    if plot.path is None:
        return f'{heading}<p class="note">{_e(plot.note)}</p>'
    data = base64.b64encode(plot.path.read_bytes()).decode("ascii")
    return (
        f'{heading}<figure><img src="data:image/png;base64,{data}" alt="{_e(plot.title)}" '
        f'data-file="{_e(plot.file)}"><figcaption>{_e(plot.caption)} '
        f"<code>{_e(plot.file)}</code></figcaption></figure>"
    )


def _dimer_html(potential: Potential | None) -> str:
    if potential is None or not potential.dimer_checks:
        return ""
    rows = []
    for check in potential.dimer_checks:
        shortest = check.shortest_distance_in_data
        rows.append(
            [
                "-".join(check.pair),
                "-" if shortest is None else f"{shortest:.3f}",
                *(f"{energy:.3g}" for energy in check.energies_ev.values()),
                "yes"
                if check.repulsive_below_data
                else f"NO (at {check.first_violation_distance} Å)",
            ]
        )
    distances = [f"E({r} Å) (eV)" for r in potential.dimer_checks[0].energies_ev]
    header = ["pair", "shortest in data (Å)", *distances, "repulsive below data"]
    return "<h3>Dimer checks (potential.json)</h3>" + _table(header, rows)


def _provenance_html(run_dir: Path, potential: Potential | None) -> str:
    rows: list[list[object]] = [
        ["run directory", str(run_dir)],
        ["report built", datetime.now(UTC).isoformat(timespec="seconds")],
    ]
    for package in ("mlip-autopipec", "matplotlib"):
        try:
            rows.append([f"report built with {package}", metadata.version(package)])
        except metadata.PackageNotFoundError:
            continue
    if potential is not None:
        provenance = potential.provenance
        rows += [
            ["trainer", potential.trainer],
            ["elements", " ".join(potential.elements)],
            ["cutoff (Å)", potential.cutoff],
            ["potential created", provenance.created_at.isoformat(timespec="seconds")],
            ["data sha256", provenance.data_sha256 or "unknown"],
            ["config sha256", provenance.config_sha256 or "unknown"],
            ["structures / atoms", f"{provenance.n_structures} / {provenance.n_atoms}"],
        ]
        rows += [[f"fitted with {name}", v] for name, v in provenance.tool_versions.items()]
        if potential.cost is not None:
            rows += cost_rows(potential.cost)
    return _table(("what", "value"), rows, text_columns=2)


def _file_html(path: Path) -> str:
    if not path.exists():
        return f'<p class="note">{_e(path.name)} is missing.</p>'
    text = path.read_text(encoding="utf-8", errors="replace")
    return f"<h3>{_e(path.name)}</h3><pre>{_e(text)}</pre>"


def _render_html(report: _Report, potential: Potential | None, metrics: dict[str, Any]) -> str:
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in report.notes)
    subtitle = (
        f"{potential.trainer} potential, elements {' '.join(potential.elements)}, "
        f"cutoff {potential.cutoff} Å"
        if potential is not None
        else "no potential record"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Training report: {_e(report.run_dir.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Training report: {_e(report.run_dir.name)}</h1>",
        f"<p>{_e(subtitle)}</p>",
        notes,
        *(  # a next generation (README, "Generations")
            f'<p class="note">{_e(line)}</p>'
            for line in (potential.lineage.describe() if potential and potential.lineage else [])
        ),
        "<h2>Errors of the final potential</h2>",
        _metrics_table(metrics),
        "<h2>Plots</h2>",
        *(_plot_html(plot) for plot in report.plots),
        _dimer_html(potential),
        "<h2>Provenance</h2>",
        _provenance_html(report.run_dir, potential),
        "<h2>Configuration</h2>",
        _file_html(report.run_dir / INPUT_YAML),
        _file_html(report.run_dir / POTENTIAL_JSON),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"
