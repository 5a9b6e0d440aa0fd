"""The report's plots: parity, error histograms, learning curve and dimer curves (PNG files)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlip_autopipec.analysis.dimers import DIMERS_PNG as DIMERS_PNG
from mlip_autopipec.analysis.parity import new_figure, style
from mlip_autopipec.domain_models.metrics import rmse_mae_mev
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, Potential
from mlip_autopipec.infrastructure.rundir.files import (
    TEST_METRICS_TXT,
    TRAIN_METRICS_TXT,
    TRAIN_PREDICTIONS_NPZ,
)
from mlip_autopipec.report.predictions import Predictions, iteration_offsets, iterations

PARITY_ENERGY_PNG = "parity_energy.png"
PARITY_FORCES_PNG = "parity_forces.png"
ERROR_HISTOGRAMS_PNG = "error_histograms.png"
LEARNING_CURVE_PNG = "learning_curve.png"
PLOT_FILES = (
    PARITY_ENERGY_PNG,
    PARITY_FORCES_PNG,
    ERROR_HISTOGRAMS_PNG,
    LEARNING_CURVE_PNG,
    DIMERS_PNG,
)
DPI = 110


@dataclass
class Plot:
    """One plot of the report: its file once drawn, else a note why it is missing."""

    title: str
    file: str
    caption: str
    path: Path | None = None
    note: str | None = None


@dataclass
class Report:
    run_dir: Path
    out: Path
    notes: list[str] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG at the reports' resolution; its path."""
    figure.savefig(path, dpi=DPI)
    return path


def add_plot(
    report: Report,
    predictions: Sequence[Predictions],
    draw: Callable[[Sequence[Predictions]], Figure],
    file: str,
) -> None:
    title, caption = _PLOT_TEXT[file]
    plot = Plot(title, file, caption)
    if predictions:
        plot.path = save_figure(draw(predictions), report.out / file)
    else:
        plot.note = f"not drawn: no predictions ({TRAIN_PREDICTIONS_NPZ} is missing or unreadable)"
    report.plots.append(plot)


def plot_error_histograms(predictions: Sequence[Predictions]) -> Figure:
    figure = new_figure(2, width=5.8, height=4.4)
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
            colour, _ = style(label)
            rmse, mae = rmse_mae_mev(error / 1000)  # errors are in meV already
            axes.hist(
                error,
                bins=bins,
                weights=np.full(error.size, 1.0 / error.size),
                histtype="stepfilled",
                alpha=0.35,
                color=colour,
                edgecolor=colour,
                linewidth=1.2,
                label=f"{label}: RMSE {rmse:.1f}, MAE {mae:.1f} {unit}",
            )
        axes.axvline(0.0, color="grey", linewidth=0.8)
        axes.set_ylim(0.0, 1.3 * axes.get_ylim()[1])  # room for the legend
        axes.set_title(f"Error of {what} (ACE - reference)")
        axes.set_xlabel(f"error ({unit})")
        axes.set_ylabel(f"fraction of {counted}")
        axes.legend(fontsize="small")
        axes.grid(alpha=0.3)
    return figure


def add_learning_curve(report: Report, curves: dict[str, pd.DataFrame | None]) -> None:
    title, caption = _PLOT_TEXT[LEARNING_CURVE_PNG]
    plot = Plot(title, LEARNING_CURVE_PNG, caption)
    report.plots.append(plot)
    if curves["train"] is None:
        plot.note = f"not drawn: {TRAIN_METRICS_TXT} is missing, empty or unreadable"
        return
    if curves["test"] is None:
        plot.caption += f" No test curve: {TEST_METRICS_TXT} is missing or empty."
    offsets = iteration_offsets(curves["train"])
    figure = new_figure(3, width=4.8, height=4.2)
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
            colour, marker = style(label)
            axes.plot(
                iterations(frame, offsets),
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
    plot.path = save_figure(figure, report.out / LEARNING_CURVE_PNG)


def add_dimers(report: Report, potential: Potential | None, compute: bool) -> None:
    title, caption = _PLOT_TEXT[DIMERS_PNG]
    plot = Plot(title, DIMERS_PNG, caption)
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
    trainer_plot = report.run_dir / DIMERS_PNG
    if trainer_plot.exists():
        shutil.copyfile(trainer_plot, path)
        plot.path = path
        plot.caption += f" (the trainer's {DIMERS_PNG})"
    else:
        plot.note = (
            f"not available: the run has no {DIMERS_PNG}; "
            "build the report with compute_dimers (mlip-autopipec report --dimers) to compute it"
        )


def _compute_dimers(potential: Potential, path: Path, report: Report) -> Path:
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
