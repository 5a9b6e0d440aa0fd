"""What a run wrote that the report reads: its record, predictions and learning curve."""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlip_autopipec.domain_models.metrics import FitMetrics
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, Potential, load_finished_run
from mlip_autopipec.errors import NotAFinishedRun
from mlip_autopipec.infrastructure.pacemaker.outputs import PredictionArrays, read_predictions
from mlip_autopipec.infrastructure.rundir.files import TEST_PREDICTIONS_NPZ, TRAIN_PREDICTIONS_NPZ

log = logging.getLogger(__name__)

LEARNING_CURVE_COLUMNS = ("iter_num", "loss", "rmse_epa", "rmse_f_comp")


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


def load_potential(run_dir: Path, notes: list[str]) -> Potential | None:
    """The run's ``potential.json``, or None with a note why not."""
    try:
        return load_finished_run(run_dir)
    except NotAFinishedRun as error:
        if not (run_dir / POTENTIAL_JSON).exists():
            notes.append(f"no {POTENTIAL_JSON}: the run did not finish")
        else:
            notes.append(f"{POTENTIAL_JSON} is unreadable: {error.__cause__ or error}")
        return None


def read_all_predictions(run_dir: Path, notes: list[str]) -> list[Predictions]:
    """The safe (``.npz``) copies of pacemaker's predictions; its pickles are never read."""
    predictions = []
    for label, name in (("train", TRAIN_PREDICTIONS_NPZ), ("test", TEST_PREDICTIONS_NPZ)):
        path = run_dir / name
        if not path.exists():
            if label == "train":
                notes.append(f"no {name}: pacemaker did not finish its fit")
            continue
        try:
            arrays = read_predictions(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            notes.append(f"{name} is unreadable ({type(error).__name__}: {error})")
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


def read_learning_curve(path: Path) -> pd.DataFrame | None:
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


def iterations(frame: pd.DataFrame, offsets: dict[tuple[int, int], int]) -> np.ndarray:
    """Iteration numbers counted through all ladder steps and cycles (iter_num restarts in each)."""
    iterations = frame["iter_num"].to_numpy(dtype=int)
    if not {"ladder_step", "cycle_step"} <= set(frame.columns):
        return iterations
    keys = zip(frame["ladder_step"], frame["cycle_step"], strict=True)
    return np.array(
        [i + offsets.get((int(a), int(b)), 0) for i, (a, b) in zip(iterations, keys, strict=True)]
    )


def iteration_offsets(frame: pd.DataFrame) -> dict[tuple[int, int], int]:
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
