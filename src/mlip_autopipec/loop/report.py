"""The loop's report: LOOP_DIR/report/loop_report.html with one plot per question (how many
candidates, selected and labelled; how far MD got; max gamma; errors; where the time went)."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter

from mlip_autopipec.analysis.parity import new_figure
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.loop.records import CONFIG_FILE, INPUTS_DIR, REPORT_DIR, STEPS
from mlip_autopipec.loop.status import IterationRecords, iteration_records, loop_status
from mlip_autopipec.report.html import escape, page, plot_html, table
from mlip_autopipec.report.plots import Plot, save_figure

log = logging.getLogger("mlip_autopipec.loop")

REPORT_HTML = "loop_report.html"


def write_loop_report_or_warn(loop_dir: Path) -> Path | None:
    """The report, rebuilt; a failure to draw it is a warning, never the loop's end."""
    try:
        return write_loop_report(loop_dir)
    except Exception as error:  # a plot must not stop a loop that costs hours
        log.warning("the loop report could not be written: %s: %s", type(error).__name__, error)
        return None


def write_loop_report(loop_dir: Path) -> Path:
    """Draw the plots and write the HTML page into ``loop_dir/report``."""
    out = loop_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    iterations = iteration_records(loop_dir)
    thresholds = _gamma_thresholds(loop_dir)
    plots = [
        _plot(out, "structures.png", "Structures per iteration", _draw_counts, iterations),
        _plot(out, "gamma.png", "Max gamma reached in MD", _draw_gamma, iterations, thresholds),
        _plot(out, "md_progress.png", "How far MD got, per condition", _draw_md, iterations),
        _plot(out, "errors.png", "Force errors per generation", _draw_errors, iterations),
        _plot(out, "wall_time.png", "Wall time by stage", _draw_wall_time, iterations),
    ]
    status = loop_status(loop_dir)
    parts = [
        "<h1>Active-learning loop</h1>",
        f"<pre>{escape(status)}</pre>",
        "<h2>Iterations</h2>",
        _iteration_table(iterations),
        "<h2>Plots</h2>",
        *(plot_html(plot) for plot in plots),
    ]
    path = out / REPORT_HTML
    write_text_atomic(path, page(f"Loop {loop_dir.name}", parts))
    return path


def _gamma_thresholds(loop_dir: Path) -> tuple[float | None, float | None]:
    try:
        raw = yaml.safe_load((loop_dir / INPUTS_DIR / CONFIG_FILE).read_text(encoding="utf-8"))
        explorer = raw["explorer"]
        return float(explorer["gamma_lower"]), float(explorer["gamma_upper"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None, None


def _plot(out: Path, file: str, title: str, draw: Any, *args: Any) -> Plot:
    plot = Plot(title, file, title + ".")
    figure = draw(*args)
    if figure is None:
        plot.note = "not drawn: no step has recorded these numbers yet"
    else:
        plot.path = save_figure(figure, out / file)
    return plot


def _values(
    iterations: list[IterationRecords], step: str, key: str
) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for records in iterations:
        value = records.steps.get(step, {}).get(key)
        if value is not None:
            xs.append(records.iteration)
            ys.append(float(value))
    return xs, ys


def _draw_counts(iterations: list[IterationRecords]) -> Figure | None:
    series = {
        "candidates": _values(iterations, "explore", "n_candidates"),
        "selected": _values(iterations, "select", "n_selected"),
        "oracle calls": _values(iterations, "label", "n_calls"),
        "oracle failures": _values(iterations, "label", "n_failed"),
    }
    if not any(xs for xs, _ in series.values()):
        return None
    figure = new_figure(1, width=6.5, height=4.0)
    axes = figure.add_subplot()
    width = 0.2
    for offset, (name, (xs, ys)) in enumerate(series.items()):
        axes.bar(np.asarray(xs) + (offset - 1.5) * width, ys, width, label=name)
    axes.set_xlabel("iteration")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("structures")
    axes.legend()
    return figure


def _draw_gamma(
    iterations: list[IterationRecords], thresholds: tuple[float | None, float | None]
) -> Figure | None:
    xs, ys = _values(iterations, "explore", "max_gamma")
    if not xs:
        return None
    figure = new_figure(1, width=6.5, height=4.0)
    axes = figure.add_subplot()
    axes.semilogy(xs, ys, "o-", label="max gamma of the iteration's MD")
    axes.yaxis.set_major_formatter(ScalarFormatter())
    axes.yaxis.set_minor_formatter(NullFormatter())
    for value, name in zip(thresholds, ("gamma_lower", "gamma_upper"), strict=True):
        if value is not None:
            axes.axhline(value, linestyle="--", color="grey")
            axes.annotate(name, (xs[0], value), va="bottom")
    axes.set_xlabel("iteration (MD with the previous generation)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("max extrapolation grade gamma")
    return figure


def _condition(trajectory: dict[str, Any]) -> str:
    temperature = trajectory.get("temperature_K")
    pressure = trajectory.get("pressure_GPa")
    text = "?" if temperature is None else f"{float(temperature):g} K"
    return text if pressure in (None, "None") else f"{text}, {pressure} GPa"


def _order(condition: str) -> tuple[float, str]:
    """Conditions by temperature, then pressure ("300 K" before "1200 K")."""
    number = condition.split(" ")[0]
    return (float(number) if number.replace(".", "").isdigit() else float("inf"), condition)


def _draw_md(iterations: list[IterationRecords]) -> Figure | None:
    progress: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for records in iterations:
        for trajectory in records.steps.get("explore", {}).get("trajectories", []):
            planned = float(trajectory.get("steps_planned") or 1)
            done = float(trajectory.get("steps_done") or 0)
            progress[_condition(trajectory)][records.iteration].append(done / planned)
    if not progress:
        return None
    figure = new_figure(1, width=6.5, height=4.0)
    axes = figure.add_subplot()
    for condition, by_iteration in sorted(progress.items(), key=lambda item: _order(item[0])):
        xs = sorted(by_iteration)
        axes.plot(xs, [100 * float(np.mean(by_iteration[x])) for x in xs], "o-", label=condition)
    axes.set_ylim(0, 105)
    axes.set_xlabel("iteration")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("MD steps run, % of planned (mean)")
    axes.legend(title="condition")
    return figure


def _draw_errors(iterations: list[IterationRecords]) -> Figure | None:
    series = {
        "train": _values(iterations, "train", "train_force_rmse_mev"),
        "test (split)": _values(iterations, "train", "test_force_rmse_mev"),
        "--test-data": _values(iterations, "train", "test_data_force_rmse_mev"),
    }
    if not any(xs for xs, _ in series.values()):
        return None
    figure = new_figure(1, width=6.5, height=4.0)
    axes = figure.add_subplot()
    for name, (xs, ys) in series.items():
        if xs:
            axes.plot(xs, ys, "o-", label=name)
    axes.set_xlabel("generation")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("force RMSE (meV/Å)")
    axes.legend()
    return figure


def _draw_wall_time(iterations: list[IterationRecords]) -> Figure | None:
    if not any(records.steps for records in iterations):
        return None
    figure = new_figure(1, width=6.5, height=4.0)
    axes = figure.add_subplot()
    xs = np.asarray([records.iteration for records in iterations])
    bottom = np.zeros(len(xs))
    startup = np.asarray(
        [float(records.steps.get("train", {}).get("startup_s") or 0.0) for records in iterations]
    )
    for step in STEPS:
        values = np.asarray(
            [float(records.steps.get(step, {}).get("wall_s", 0.0)) for records in iterations]
        )
        axes.bar(xs, values, bottom=bottom, label=step)
        if step == "train" and startup.any():  # the fit's start-up, hatched inside its bar
            axes.bar(xs, startup, bottom=bottom, fill=False, hatch="//", label="train start-up")
        bottom += values
    axes.set_xlabel("iteration")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("wall time (s)")
    axes.legend()
    return figure


def _iteration_table(iterations: list[IterationRecords]) -> str:
    def get(records: IterationRecords, step: str, key: str, fmt: str = "{}") -> str:
        value = records.steps.get(step, {}).get(key)
        return "-" if value is None else fmt.format(value)

    rows = [
        [
            records.iteration,
            get(records, "explore", "n_candidates"),
            get(records, "explore", "max_gamma", "{:.2f}"),
            get(records, "select", "n_selected"),
            get(records, "label", "n_calls"),
            get(records, "label", "n_failed"),
            get(records, "train", "train_force_rmse_mev", "{:.1f}"),
            get(records, "train", "test_force_rmse_mev", "{:.1f}"),
            get(records, "train", "test_data_force_rmse_mev", "{:.1f}"),
            f"{sum(float(d.get('wall_s', 0.0)) for d in records.steps.values()):.0f}",
        ]
        for records in iterations
    ]
    header = (
        "iteration",
        "candidates",
        "max gamma",
        "selected",
        "oracle calls",
        "failures",
        "train F RMSE",
        "test F RMSE",
        "--test-data F RMSE",
        "wall s",
    )
    return table(header, rows)
