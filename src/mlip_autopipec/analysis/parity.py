"""Parity plots: what a potential predicts against the reference, for energies per atom and
force components. The training report draws them for the train and test sets, ``evaluate`` for
the data it was given."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlip_autopipec.domain_models.metrics import FitMetrics, rmse_mae_mev

#: Colour and marker of each set.
SET_STYLE = {"train": ("tab:blue", "o"), "test": ("tab:orange", "^")}
OTHER_STYLE = ("tab:green", "s")


class ParitySet(Protocol):
    """One set of predictions: energies per atom (eV/atom), force components (eV/Å, one row per
    atom) with the element of each row (None: unknown), and their errors."""

    @property
    def label(self) -> str: ...
    @property
    def metrics(self) -> FitMetrics: ...
    @property
    def energy_reference(self) -> np.ndarray: ...
    @property
    def energy_predicted(self) -> np.ndarray: ...
    @property
    def force_reference(self) -> np.ndarray: ...
    @property
    def force_predicted(self) -> np.ndarray: ...
    @property
    def symbols(self) -> np.ndarray | None: ...


def style(label: str) -> tuple[str, str]:
    """Colour and marker of the set ``label``."""
    return SET_STYLE.get(label, OTHER_STYLE)


def new_figure(columns: int, *, width: float = 5.2, height: float = 4.6) -> Figure:
    figure = Figure(figsize=(width * columns, height), layout="constrained")
    FigureCanvasAgg(figure)  # Agg, without pyplot: no global figure list to leak into
    return figure


def identity_line(axes: Axes, values: Iterable[np.ndarray]) -> None:
    stacked = np.concatenate([np.ravel(v) for v in values])
    low, high = float(stacked.min()), float(stacked.max())
    pad = 0.04 * (high - low or 1.0)
    limits = (low - pad, high + pad)
    axes.plot(limits, limits, color="grey", linestyle="--", linewidth=1, label="y = x", zorder=0)
    axes.set_xlim(limits)
    axes.set_ylim(limits)
    axes.set_aspect("equal")


def energy_parity(predictions: Sequence[ParitySet]) -> Figure:
    """Energy per atom predicted against the reference, one colour per set, with its errors."""
    figure = new_figure(1, width=6.0, height=5.6)
    axes = figure.add_subplot()
    for p in predictions:
        colour, marker = style(p.label)
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
    identity_line(axes, [v for p in predictions for v in (p.energy_reference, p.energy_predicted)])
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


def force_parity(predictions: Sequence[ParitySet]) -> Figure:
    """Force components predicted against the reference, a panel per set, a colour per element,
    with a zoom on the central 98 %."""
    figure = new_figure(len(predictions), width=5.6, height=5.6)
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
        identity_line(axes, values)
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
