"""The report's one self-contained HTML page: metrics tables, embedded plots, provenance."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, Potential
from mlip_autopipec.infrastructure.rundir.files import INPUT_YAML
from mlip_autopipec.infrastructure.trainer.cost.record import cost_rows
from mlip_autopipec.report.plots import Plot, Report

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


def page(title: str, parts: Iterable[str]) -> str:
    """A self-contained HTML page: ``title`` (plain text) and its body ``parts`` (HTML)."""
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    return "\n".join(part for part in [*head, *parts, "</body></html>"] if part) + "\n"


def escape(value: object) -> str:
    """``value`` as text safe inside HTML."""
    return html.escape(str(value))


def table(header: Sequence[str], rows: Iterable[Sequence[object]], text_columns: int = 1) -> str:
    """An HTML table; the first ``text_columns`` columns left-aligned, the others right."""

    def cells(values: Sequence[object], tag: str) -> str:
        return "".join(
            f"<{tag}{' class=text' if i < text_columns else ''}>{escape(v)}</{tag}>"
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
    text = table(header, rows)
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
        text += "<h3>Forces by element</h3>" + table(element_header, per_element, 2)
    return text


def plot_html(plot: Plot) -> str:
    """A plot's heading and embedded PNG, or the note saying why it was not drawn."""
    heading = f"<h3>{escape(plot.title)}</h3>"
    if plot.path is None:
        return f'{heading}<p class="note">{escape(plot.note)}</p>'
    data = base64.b64encode(plot.path.read_bytes()).decode("ascii")
    return (
        f'{heading}<figure><img src="data:image/png;base64,{data}" alt="{escape(plot.title)}" '
        f'data-file="{escape(plot.file)}"><figcaption>{escape(plot.caption)} '
        f"<code>{escape(plot.file)}</code></figcaption></figure>"
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
    return "<h3>Dimer checks (potential.json)</h3>" + table(header, rows)


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
    return table(("what", "value"), rows, text_columns=2)


def _file_html(path: Path) -> str:
    if not path.exists():
        return f'<p class="note">{escape(path.name)} is missing.</p>'
    text = path.read_text(encoding="utf-8", errors="replace")
    return f"<h3>{escape(path.name)}</h3><pre>{escape(text)}</pre>"


def render_html(report: Report, potential: Potential | None, metrics: dict[str, Any]) -> str:
    notes = "".join(f'<p class="note">{escape(note)}</p>' for note in report.notes)
    subtitle = (
        f"{potential.trainer} potential, elements {' '.join(potential.elements)}, "
        f"cutoff {potential.cutoff} Å"
        if potential is not None
        else "no potential record"
    )
    parts = [
        f"<h1>Training report: {escape(report.run_dir.name)}</h1>",
        f"<p>{escape(subtitle)}</p>",
        notes,
        *(  # a next generation (docs: how-to/generations)
            f'<p class="note">{escape(line)}</p>'
            for line in (potential.lineage.describe() if potential and potential.lineage else [])
        ),
        "<h2>Errors of the final potential</h2>",
        _metrics_table(metrics),
        "<h2>Plots</h2>",
        *(plot_html(plot) for plot in report.plots),
        _dimer_html(potential),
        "<h2>Provenance</h2>",
        _provenance_html(report.run_dir, potential),
        "<h2>Configuration</h2>",
        _file_html(report.run_dir / INPUT_YAML),
        _file_html(report.run_dir / POTENTIAL_JSON),
    ]
    return page(f"Training report: {report.run_dir.name}", parts)
