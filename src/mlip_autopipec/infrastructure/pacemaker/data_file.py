"""pacemaker's data file: a gzip-pickled pandas DataFrame of structures and labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from mlip_autopipec.domain_models.dataset import Dataset, LabelledStructure
from mlip_autopipec.errors import DatasetValidationError
from mlip_autopipec.files import atomic_path

#: gzip level 1 writes several times faster than pandas' default 9, for a slightly larger file.
GZIP_LEVEL = 1


def dataset_to_dataframe(
    dataset: Dataset,
    reference_energies: Mapping[str, float] | None = None,
    baseline_labels: Sequence[tuple[float, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """pacemaker's DataFrame: ``ase_atoms``, ``energy``, ``forces``, ``energy_corrected``, ``name``.

    pacemaker fits ``energy_corrected`` and ``forces``. ``energy_corrected`` is the total energy
    (eV) minus the per-element ``reference_energies`` (eV/atom). With ``baseline_labels`` (the
    baseline's energy in eV and forces in eV/Å for each structure) both fitted columns hold the
    residual, label minus baseline; the labels stay in ``energy`` and ``forces_label``, the
    baseline in ``energy_baseline`` and ``forces_baseline``. Per-structure weights become
    pacemaker's ``w_energy`` and per-atom ``w_forces``, normalised as its weighting policies do.
    """
    reference_energies = dict(reference_energies or {})
    missing = sorted(set(dataset.elements) - set(reference_energies)) if reference_energies else []
    if missing:
        raise ValueError(f"no reference energy for elements {missing}")

    atoms_column = []
    reference_by_number = np.zeros(len(chemical_symbols))
    for symbol, value in reference_energies.items():
        reference_by_number[atomic_numbers[symbol]] = value
    offsets = np.empty(len(dataset))
    for index, structure in enumerate(dataset):
        pbc = structure.atoms.pbc
        if pbc.any() and not pbc.all():
            raise DatasetValidationError(
                f"has pbc={pbc.tolist()}; pacemaker supports only fully periodic "
                "or non-periodic structures (make a slab periodic in all directions, with vacuum)",
                index=index,
                name=structure.name,
                source=dataset.source,
            )
        # A copy (0.03 ms for 32 atoms): changing the frame cannot change the dataset.
        atoms = structure.atoms.copy()
        atoms.info = dict(structure.info)
        atoms_column.append(atoms)
        # Summed atom by atom, in order (as a sum over the symbols would).
        offsets[index] = sum(reference_by_number[structure.atoms.numbers].tolist(), start=0.0)
    energies = np.array([s.energy for s in dataset], dtype=float)
    frame = pd.DataFrame(
        {
            "name": [s.name for s in dataset],
            "ase_atoms": atoms_column,
            "energy": energies,
            "forces": [s.forces for s in dataset],
            "energy_corrected": energies - offsets,
        }
    )
    if baseline_labels is not None:
        if len(baseline_labels) != len(dataset):
            raise ValueError(
                f"{len(baseline_labels)} baseline labels for {len(dataset)} structures"
            )
        baseline_energies = np.array([energy for energy, _ in baseline_labels], dtype=float)
        frame["energy_baseline"] = baseline_energies
        frame["energy_corrected"] -= baseline_energies
        frame["forces_label"] = frame["forces"]
        frame["forces_baseline"] = _per_structure([forces for _, forces in baseline_labels], frame)
        frame["forces"] = _per_structure(
            [s.forces - forces for s, (_, forces) in zip(dataset, baseline_labels, strict=True)],
            frame,
        )
    if dataset.has_weights:
        energy_weights = np.array(
            [1.0 if s.energy_weight is None else s.energy_weight for s in dataset]
        )
        force_weights = [
            np.full(s.n_atoms, 1.0 if s.force_weight is None else s.force_weight) for s in dataset
        ]
        if energy_weights.sum() <= 0:
            raise DatasetValidationError("all energy weights are zero", source=dataset.source)
        total_force_weight = sum(float(w.sum()) for w in force_weights)
        if total_force_weight <= 0:
            raise DatasetValidationError("all force weights are zero", source=dataset.source)
        frame["w_energy"] = energy_weights / energy_weights.sum()
        frame["w_forces"] = _per_structure([w / total_force_weight for w in force_weights], frame)
    return frame


def _per_structure(arrays: Sequence[np.ndarray], frame: pd.DataFrame) -> pd.Series:
    """A column holding one array per structure (row)."""
    return pd.Series(list(arrays), index=frame.index, dtype=object)


def dataframe_to_dataset(frame: pd.DataFrame, *, source: str | Path | None = None) -> Dataset:
    """The labelled structures of a pacemaker DataFrame (raw ``energy`` and ``forces``)."""
    for column in ("ase_atoms", "energy", "forces"):
        if column not in frame.columns:
            raise DatasetValidationError(f"pacemaker data has no '{column}' column", source=source)
    names = (
        frame["name"] if "name" in frame.columns else [f"structure/{i}" for i in range(len(frame))]
    )
    structures = []
    # With a baseline, "forces" holds the residual and the labels are in "forces_label".
    labels = frame["forces_label"] if "forces_label" in frame.columns else frame["forces"]
    for atoms, energy, forces, name in zip(
        frame["ase_atoms"], frame["energy"], labels, names, strict=True
    ):
        bare = Atoms(
            numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
        )
        structures.append(
            LabelledStructure(
                atoms=bare,
                energy=float(energy),
                forces=np.asarray(forces),
                name=str(name),
                info=dict(atoms.info),
            )
        )
    return Dataset(structures, source=source)


def write_data_file(frame: pd.DataFrame, path: Path) -> None:
    """Write the DataFrame as gzip pickle, atomically (no half-written file on failure)."""
    with atomic_path(path) as temporary:
        frame.to_pickle(temporary, compression={"method": "gzip", "compresslevel": GZIP_LEVEL})


def read_data_file(path: Path) -> pd.DataFrame:
    """Read a pacemaker data file (any gzip level)."""
    frame = pd.read_pickle(path, compression="gzip")
    if not isinstance(frame, pd.DataFrame):
        raise DatasetValidationError("is not a pandas DataFrame", source=path)
    return frame


def read_dataset(path: Path) -> Dataset:
    """The labelled structures of a pacemaker data file."""
    return dataframe_to_dataset(read_data_file(path), source=path)
