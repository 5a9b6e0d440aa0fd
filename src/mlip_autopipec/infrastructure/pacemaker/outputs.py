"""What pacemaker leaves in its work directory, and the metrics read from it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlip_autopipec.domain_models.metrics import FitMetrics, metrics_from_errors
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.files import atomic_path
from mlip_autopipec.infrastructure.rundir.files import (
    DATA_FILE,
    TEST_PREDICTIONS,
    TEST_PREDICTIONS_NPZ,
    TRAIN_PREDICTIONS,
    TRAIN_PREDICTIONS_NPZ,
)

if TYPE_CHECKING:
    from mlip_autopipec.domain_models.dataset import Dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionArrays:
    """The final potential's predictions on one set, one entry per structure or atom.

    Energies are totals (eV) of ``energy_corrected``, what pacemaker fits (labels minus
    reference energies and baseline); forces are per atom (eV/Å), the structures' atoms one
    after the other; ``symbols`` holds each atom's element, or is empty when unknown.
    """

    names: np.ndarray
    n_atoms: np.ndarray
    energy_reference: np.ndarray
    energy_predicted: np.ndarray
    force_reference: np.ndarray
    force_predicted: np.ndarray
    symbols: np.ndarray

    @property
    def metrics(self) -> FitMetrics:
        energy_error = (self.energy_predicted - self.energy_reference) / self.n_atoms
        return metrics_from_errors(energy_error, self.force_predicted - self.force_reference)


def convert_predictions(
    pickle_path: Path, npz_path: Path, symbols_by_name: Mapping[str, Sequence[str]]
) -> PredictionArrays:
    """Copy pacemaker's ``*_pred.pckl.gzip`` to ``.npz`` (no pickled objects).

    Call it only right after pacemaker wrote the pickle in our locked run directory: a pickle
    can run code when it is read. ``symbols_by_name`` gives the elements of each structure
    (from the data we wrote); a name it lacks, or with another atom count, leaves the symbols
    unknown.
    """
    frame = pd.read_pickle(pickle_path, compression="gzip")
    n_atoms = frame["NUMBER_OF_ATOMS"].to_numpy(dtype=int)
    symbols: list[str] = []
    for name, count in zip(frame["name"], n_atoms, strict=True):
        known = symbols_by_name.get(str(name))
        if known is None or len(known) != count:
            symbols = []
            break
        symbols.extend(known)
    arrays = PredictionArrays(
        names=np.array([str(name) for name in frame["name"]], dtype=str),
        n_atoms=n_atoms,
        energy_reference=frame["energy_corrected"].to_numpy(dtype=float),
        energy_predicted=frame["energy_pred"].to_numpy(dtype=float),
        force_reference=_stack(frame["forces"]),
        force_predicted=_stack(frame["forces_pred"]),
        symbols=np.array(symbols, dtype=str),
    )
    with atomic_path(npz_path) as temporary, open(temporary, "wb") as stream:
        np.savez_compressed(stream, **{f.name: getattr(arrays, f.name) for f in fields(arrays)})
    return arrays


def convert_fit_predictions(
    workdir: Path,
    training_set: Dataset,
    test_dataset: Dataset | None,
    *,
    weighting: str,
    log_name: str,
) -> dict[str, PredictionArrays]:
    """pacemaker's ``*_pred.pckl.gzip``, just written in ``workdir``, copied to ``.npz``
    (:func:`convert_predictions`), by pickle name; raises TrainerError when pacemaker used other
    numbers of structures or atoms than we wrote (``test_dataset``: the fixed test set we wrote
    beside the training data), unless ``weighting`` is energy_based, which leaves some out."""
    written_sets = [training_set] if test_dataset is None else [training_set, test_dataset]
    symbols = {s.name: s.atoms.get_chemical_symbols() for s in training_set}
    test_symbols = symbols
    if test_dataset is not None:
        test_symbols = {s.name: s.atoms.get_chemical_symbols() for s in test_dataset}
    predictions = {
        name: convert_predictions(workdir / name, workdir / npz, known)
        for name, npz, known in (
            (TRAIN_PREDICTIONS, TRAIN_PREDICTIONS_NPZ, symbols),
            (TEST_PREDICTIONS, TEST_PREDICTIONS_NPZ, test_symbols),
        )
        if (workdir / name).exists()
    }
    used = (
        sum(len(p.n_atoms) for p in predictions.values()),
        sum(int(p.n_atoms.sum()) for p in predictions.values()),
    )
    written = (
        sum(len(written_set) for written_set in written_sets),
        sum(written_set.n_atoms for written_set in written_sets),
    )
    if used != written:
        message = (
            f"pacemaker fitted {used[0]} structures ({used[1]} atoms) of the {written[0]} "
            f"({written[1]} atoms) in {DATA_FILE}"
        )
        if weighting != "energy_based":
            raise TrainerError(
                f"{message}: it dropped some; see {log_name}",
                workdir=workdir,
                log_path=workdir / log_name,
            )
        log.warning("%s: fit.weighting energy_based leaves out high-energy structures", message)
    return predictions


def read_predictions(path: Path) -> PredictionArrays:
    """The predictions of a ``.npz`` written by :func:`convert_predictions` (never unpickled)."""
    with np.load(path, allow_pickle=False) as data:
        return PredictionArrays(**{f.name: data[f.name] for f in fields(PredictionArrays)})


def _stack(column: pd.Series) -> np.ndarray:
    if not len(column):
        return np.zeros((0, 3))
    return np.vstack([np.asarray(value, dtype=float) for value in column])


def read_prediction_metrics(path: Path) -> FitMetrics:
    """Errors of the final potential from the safe copy of pacemaker's predictions (``.npz``).

    pacemaker predicts every structure of its train (test) set with the final potential; its
    own table at the end of ``log.txt`` holds the same numbers. Energies are compared per atom
    (meV/atom), forces per Cartesian component (meV/Å).
    """
    return read_predictions(path).metrics
