"""What pacemaker leaves in its work directory, and the metrics read from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlip_autopipec.domain_models.potential import FitMetrics

OUTPUT_POTENTIAL_YAML = "output_potential.yaml"
#: The training set as pacemaker split and processed it (its active set is built from it).
FITTING_DATA = "fitting_data_info.pckl.gzip"
#: pacemaker's test split, with ``ase_atoms``.
TEST_DATA_INFO = "test_data_info.pckl.gzip"
#: pacemaker's loss and errors per iteration (train; test every ``display_step``).
TRAIN_METRICS_TXT = "metrics.txt"
TEST_METRICS_TXT = "test_metrics.txt"
TRAIN_PREDICTIONS = "train_pred.pckl.gzip"
TEST_PREDICTIONS = "test_pred.pckl.gzip"
#: Files a finished pacemaker run leaves; removed before a new run so none is stale.
RESULT_FILES = (
    OUTPUT_POTENTIAL_YAML,
    TRAIN_PREDICTIONS,
    TEST_PREDICTIONS,
    TRAIN_METRICS_TXT,
    TEST_METRICS_TXT,
    "cycle_metrics.txt",
    "test_cycle_metrics.txt",
    FITTING_DATA,
)


def read_prediction_metrics(path: Path) -> FitMetrics:
    """Errors of the final potential from pacemaker's predictions file (``*_pred.pckl.gzip``).

    pacemaker predicts every structure of its train (test) set with the final potential; its
    own table at the end of ``log.txt`` holds the same numbers. Energies are compared per atom
    (meV/atom), forces per Cartesian component (meV/Å).
    """
    frame = pd.read_pickle(path, compression="gzip")
    n_atoms = frame["NUMBER_OF_ATOMS"].to_numpy(dtype=float)
    energy_error = (frame["energy_pred"] - frame["energy_corrected"]).to_numpy() / n_atoms
    force_error = np.vstack(list(frame["forces_pred"])) - np.vstack(list(frame["forces"]))
    return metrics_from_errors(energy_error, force_error)


def metrics_from_errors(
    energy_error_ev_per_atom: np.ndarray, force_error_ev_per_angstrom: np.ndarray
) -> FitMetrics:
    """RMSE and MAE in meV/atom and meV/Å from per-structure and per-component errors in eV."""
    energy = np.asarray(energy_error_ev_per_atom, dtype=float)
    forces = np.asarray(force_error_ev_per_angstrom, dtype=float).ravel()
    return FitMetrics(
        energy_rmse_mev_per_atom=1000 * float(np.sqrt(np.mean(energy**2))),
        energy_mae_mev_per_atom=1000 * float(np.mean(np.abs(energy))),
        force_rmse_mev_per_angstrom=1000 * float(np.sqrt(np.mean(forces**2))),
        force_mae_mev_per_angstrom=1000 * float(np.mean(np.abs(forces))),
        n_structures=len(energy),
    )
