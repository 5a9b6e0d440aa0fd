"""Errors of a potential: the one home of RMSE and MAE (meV/atom, meV/Å) and their record."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict


class FitMetrics(BaseModel):
    """Errors of a potential on one set of structures (energies per atom, force components)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    energy_rmse_mev_per_atom: float
    energy_mae_mev_per_atom: float
    force_rmse_mev_per_angstrom: float
    force_mae_mev_per_angstrom: float
    n_structures: int | None = None


def rmse_mae_mev(error_ev: np.ndarray) -> tuple[float, float]:
    """RMSE and MAE in meV (per atom, per Å) of errors given in eV (per atom, per Å)."""
    error = np.asarray(error_ev, dtype=float).ravel()
    return 1000 * float(np.sqrt(np.mean(error**2))), 1000 * float(np.mean(np.abs(error)))


def metrics_from_errors(
    energy_error_ev_per_atom: np.ndarray, force_error_ev_per_angstrom: np.ndarray
) -> FitMetrics:
    """RMSE and MAE in meV/atom and meV/Å from per-structure and per-component errors in eV."""
    energy_rmse, energy_mae = rmse_mae_mev(energy_error_ev_per_atom)
    force_rmse, force_mae = rmse_mae_mev(force_error_ev_per_angstrom)
    return FitMetrics(
        energy_rmse_mev_per_atom=energy_rmse,
        energy_mae_mev_per_atom=energy_mae,
        force_rmse_mev_per_angstrom=force_rmse,
        force_mae_mev_per_angstrom=force_mae,
        n_structures=len(np.asarray(energy_error_ev_per_atom)),
    )
