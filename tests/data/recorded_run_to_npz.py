"""Run once (done): converted recorded_run's pacemaker pickles to the trainer's safe ``.npz``.

recorded_run/ is a real pacemaker fit (85 EMT Cu-Pt structures). Its ``train_pred.pckl.gzip``,
``test_pred.pckl.gzip`` and ``training_data.pckl.gzip`` were our own files; this script copied
the predictions, with each atom's element from the training data, to ``train_predictions.npz``
and ``test_predictions.npz`` exactly as the trainer does right after a fit, and the pickles
were then removed: nothing reads pickles from a run directory any more. Kept to document
where the ``.npz`` files come from:

    for f in train_pred test_pred training_data; do
        git show 45d84bf:tests/data/recorded_run/$f.pckl.gzip \
            > tests/data/recorded_run/$f.pckl.gzip; done
    PYTHONPATH=src python tests/data/recorded_run_to_npz.py
"""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.infrastructure.pacemaker.data_file import read_data_file
from mlip_autopipec.infrastructure.pacemaker.outputs import convert_predictions
from mlip_autopipec.infrastructure.rundir.files import (
    TEST_PREDICTIONS,
    TEST_PREDICTIONS_NPZ,
    TRAIN_PREDICTIONS,
    TRAIN_PREDICTIONS_NPZ,
)

RUN = Path(__file__).parent / "recorded_run"

if __name__ == "__main__":
    data = read_data_file(RUN / "training_data.pckl.gzip")
    symbols = {
        str(name): atoms.get_chemical_symbols()
        for name, atoms in zip(data["name"], data["ase_atoms"], strict=True)
    }
    for pickle_name, npz_name in (
        (TRAIN_PREDICTIONS, TRAIN_PREDICTIONS_NPZ),
        (TEST_PREDICTIONS, TEST_PREDICTIONS_NPZ),
    ):
        arrays = convert_predictions(RUN / pickle_name, RUN / npz_name, symbols)
        print(f"{npz_name}: {len(arrays.names)} structures, {len(arrays.symbols)} symbols")
