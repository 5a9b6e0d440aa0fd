"""The report's ``metrics.json``: final errors, forces by element and the learning curves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlip_autopipec.domain_models.metrics import FitMetrics, rmse_mae_mev
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, Potential
from mlip_autopipec.infrastructure.rundir.files import TEST_PREDICTIONS_NPZ, TRAIN_PREDICTIONS_NPZ
from mlip_autopipec.report.predictions import Predictions, iteration_offsets, iterations


def metrics_record(
    notes: list[str],
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
                notes.append(
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
    offsets = {} if train_curve is None else iteration_offsets(train_curve)
    record["learning_curve"] = {
        label: None
        if frame is None
        else {
            "iteration": iterations(frame, offsets).tolist(),
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
