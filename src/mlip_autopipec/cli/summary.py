"""What the CLI prints after a fit: where the potential is, its errors, cost and checks."""

from __future__ import annotations

from mlip_autopipec.domain_models.metrics import FitMetrics
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, FitCost, Potential


def summary(potential: Potential, *, wall_time_s: float | None = None) -> str:
    """What a user wants to know after a fit: where the potential is and how good it is."""
    lines = [f"potential ({potential.trainer}): {potential.yace_path}"]
    lines.append(f"record: {potential.run_dir / POTENTIAL_JSON}")
    lines.append(f"elements: {' '.join(potential.elements)}   cutoff: {potential.cutoff} Å")
    if wall_time_s is not None:
        lines.append(f"wall time: {wall_time_s:.1f} s")
    for label, metrics in (("train", potential.train_metrics), ("test", potential.test_metrics)):
        if metrics is not None:
            lines.append(_metrics_line(label, metrics))
    if potential.cost is not None:
        lines += _cost_lines(potential.cost)
    if potential.selection is not None:
        lines.append(
            f"trained on {potential.selection.n_selected} of {potential.selection.n_total} "
            f"structures (D-optimal selection: {potential.selection.file})"
        )
    failures = [check.failure() for check in potential.dimer_checks]
    failures += [check.failure() for check in potential.compression_checks]
    lines += [f"FAILED CHECK: {failure}" for failure in failures if failure]
    if potential.fit_stop is not None:
        lines.append(potential.fit_stop.describe())
    if potential.reference_energies_warning is not None:
        lines.append(f"WARNING: {potential.reference_energies_warning}")
    if potential.lineage is not None:  # a next generation (docs: how-to/generations)
        lines += potential.lineage.describe()
    from mlip_autopipec.report import REPORT_DIR, REPORT_HTML

    report = potential.run_dir / REPORT_DIR / REPORT_HTML
    if report.exists():
        lines.append(f"report: {report}")
    if potential.trainer == "mock":
        lines.append("(mock trainer: nothing was fitted)")
    return "\n".join(lines)


def _cost_lines(cost: FitCost) -> list[str]:
    """Estimated against measured cost, the budget, and whether the fit had converged."""
    measured = (
        "not measured" if cost.s_per_iteration is None else f"{cost.s_per_iteration:.3g} s measured"
    )
    lines = [
        f"cost: {cost.iterations or 0} iterations, {measured} per iteration "
        f"(estimated {cost.estimated_s_per_iteration:.3g} s, {cost.estimate_method or 'model'})"
    ]
    if cost.time_budget_s is not None:
        ended = "ended by the budget" if cost.stopped_at_budget else "ended before the budget"
        lines.append(f"time budget: {cost.time_budget_s:g} s, the fit {ended}")
    if cost.still_improving is not None:
        lines.append(f"NOTE: {cost.still_improving}")
    return lines


def _metrics_line(label: str, metrics: FitMetrics) -> str:
    return (
        f"{label:>5}: energy RMSE {metrics.energy_rmse_mev_per_atom:8.2f} meV/atom "
        f"(MAE {metrics.energy_mae_mev_per_atom:.2f}), force RMSE "
        f"{metrics.force_rmse_mev_per_angstrom:8.2f} meV/Å "
        f"(MAE {metrics.force_mae_mev_per_angstrom:.2f}), {metrics.n_structures} structures"
    )
