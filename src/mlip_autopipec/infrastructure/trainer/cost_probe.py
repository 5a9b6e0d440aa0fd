"""Measuring what a pacemaker iteration costs here: timed loss evaluations of the actual basis.

An iteration of pacemaker's optimiser evaluates, batch by batch, the loss of every training
structure with its gradient with respect to the coefficients (energies and forces of every
atom over its neighbours, with every function of the basis: TensorPotential's ``external_fit``),
about once per iteration. The probe does the same on a sample of the data in a subprocess of
ours, with the fit's threads: it builds the basis from the ``potential`` section of input.yaml
(pyace, as pacemaker does), the sample's neighbour lists (pyace's ``generate_tp_atoms``) and
TensorPotential's loss, evaluates it once (TensorFlow traces the graph: the bulk of pacemaker's
start-up, measured too), then EVALUATIONS times with the whole sample (PROBE_SAMPLE_ATOMS
atoms) in one batch and SPLIT_EVALUATIONS times one structure per batch (the median of each:
a busy machine's load comes and goes), which separates the cost per neighbour pair from
the cost per batch. ``cost.py`` scales these to the whole training set.

The probe runs only with python-ace's own ``pacemaker`` (its interpreter, so the measurement is
of the TensorFlow that will fit), and within PROBE_TIME_LIMIT_S; otherwise the caller falls back
to the calibrated model. Run as ``python -m mlip_autopipec.infrastructure.trainer.cost_probe
DIR``: DIR holds PROBE_JSON and SAMPLE_XYZ, the result goes to RESULT_JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipec.errors import TrainerError

PROBE_JSON = "probe.json"
SAMPLE_XYZ = "sample.extxyz"
RESULT_JSON = "probe_result.json"
PROBE_LOG = "cost_probe.log"
#: Atoms of the sample timed (whole structures drawn at random; all of a smaller dataset).
PROBE_SAMPLE_ATOMS = 1200
#: Timed evaluations of the whole sample in one batch, and with one structure per batch.
EVALUATIONS = 10
SPLIT_EVALUATIONS = 3
#: s the probe may take in all (Python and TensorFlow start-up, tracing, evaluations), unless
#: the caller expects it to take longer (a busy machine, many species blocks).
PROBE_TIME_LIMIT_S = 150.0


class ProbeUnavailable(Exception):
    """The probe cannot run or did not finish here; the message says why."""


@dataclass(frozen=True)
class ProbeTiming:
    """Measured loss evaluations of the basis on the sample (s of wall time)."""

    sample_structures: int
    sample_atoms: int
    sample_pairs: int  # neighbour pairs within the cutoff, both directions
    total_functions: int
    seconds_one_batch: float  # median evaluation of the whole sample in one batch
    seconds_per_structure_batches: float  # median evaluation with one structure per batch
    tracing_s: float  # first evaluation less a timed one: TensorFlow building the graph
    startup_s: float  # the probe process until its basis and data were ready (imports)
    wall_s: float  # the whole probe, as seen by the caller

    @property
    def seconds_per_batch(self) -> float:
        """Fixed cost of one batch (s), from the two ways of batching the sample; at least 0."""
        extra_batches = self.sample_structures - 1
        if extra_batches < 1:
            return 0.0
        difference = self.seconds_per_structure_batches - self.seconds_one_batch
        return max(0.0, difference / extra_batches)

    @property
    def seconds_per_pair(self) -> float:
        """Cost of one neighbour pair of an evaluation (s), batches' fixed cost taken out."""
        variable = max(
            self.seconds_one_batch - self.seconds_per_batch, 0.5 * self.seconds_one_batch
        )
        return variable / max(1, self.sample_pairs)


def probe_interpreter(pacemaker: str) -> str:
    """The Python of python-ace's ``pacemaker`` program (from its first line); raises
    ProbeUnavailable for another program (a wrapper, a fake), whose cost the probe would not
    measure."""
    try:
        with open(pacemaker, "rb") as script:
            head = script.read(4096).decode("utf-8", errors="replace")
    except OSError as error:
        raise ProbeUnavailable(f"cannot read {pacemaker}: {error.strerror}") from error
    first = head.splitlines()[0] if head else ""
    if not first.startswith("#!") or "pyace" not in head:
        raise ProbeUnavailable(f"{pacemaker} is not python-ace's pacemaker script")
    interpreter = first[2:].strip().split()
    if len(interpreter) != 1 or "python" not in Path(interpreter[0]).name:
        raise ProbeUnavailable(f"{pacemaker} is not run by a plain Python interpreter")
    return interpreter[0]


def run_probe(
    interpreter: str,
    potential_section: Mapping[str, Any],
    sample: Sequence[Atoms],
    *,
    kappa: float,
    environment: Mapping[str, str],
    time_limit_s: float = PROBE_TIME_LIMIT_S,
) -> ProbeTiming:
    """Time loss evaluations of the basis (input.yaml's ``potential`` section) on ``sample``
    (structures with energies and forces) in a subprocess run by ``interpreter`` with
    ``environment`` (threads, devices); raises ProbeUnavailable when it fails or overruns."""
    from mlip_autopipec.infrastructure.trainer.runner import run_program

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mlip_autopipec_probe_") as name:
        directory = Path(name)
        settings = {
            "potential": dict(potential_section),
            "kappa": kappa,
            "evaluations": EVALUATIONS,
            "split_evaluations": SPLIT_EVALUATIONS,
        }
        (directory / PROBE_JSON).write_text(json.dumps(settings), encoding="utf-8")
        from ase.io import write

        write(directory / SAMPLE_XYZ, list(sample), format="extxyz")
        log_path = directory / PROBE_LOG
        try:
            run_program(
                [interpreter, "-m", __name__, str(directory)],
                workdir=directory,
                log_path=log_path,
                env=environment,
                time_limit_s=time_limit_s,
            )
            result = json.loads((directory / RESULT_JSON).read_text(encoding="utf-8"))
        except TrainerError as error:
            said = _last_line(error.log_tail) if error.exit_code is not None else ""
            raise ProbeUnavailable(f"{error.message}{said}") from error
        except (OSError, ValueError) as error:
            raise ProbeUnavailable(f"the probe wrote no result ({error})") from error
    return ProbeTiming(**result, wall_s=time.monotonic() - started)


def _last_line(lines: Sequence[str]) -> str:
    said = [line.strip() for line in lines if line.strip()]
    return f": {said[-1]}" if said else ""


def main(argv: Sequence[str]) -> int:
    """The probe process: read DIR's inputs, time the evaluations, write RESULT_JSON."""
    began = time.monotonic()
    directory = Path(argv[0])
    settings = json.loads((directory / PROBE_JSON).read_text(encoding="utf-8"))
    from ase.io import read

    sample = list(read(directory / SAMPLE_XYZ, index=":", format="extxyz"))
    timing = _measure(settings, sample, began)
    (directory / RESULT_JSON).write_text(json.dumps(timing), encoding="utf-8")
    print(f"cost probe: {json.dumps(timing)}", flush=True)
    return 0


def _measure(settings: dict[str, Any], sample: list[Atoms], began: float) -> dict[str, Any]:
    """TensorPotential's loss and gradient on the sample, as pacemaker's tensorpot backend
    builds it (pyace.fitadapter.FitBackendAdapter.setup_tensorpot)."""
    import numpy as np
    from pyace.atomicenvironment import generate_tp_atoms
    from pyace.multispecies_basisextension import create_multispecies_basis_config
    from tensorpotential.compat.pace.constants import (
        L1_REG,
        L2_REG,
        LOSS_ENERGY_FACTOR,
        LOSS_FORCE_FACTOR,
        LOSS_TYPE,
    )
    from tensorpotential.compat.pace.potentials.ace import ACE
    from tensorpotential.compat.pace.tensorpot import TensorPotential
    from tensorpotential.compat.pace.utils.utilities import supply_batch

    potential = settings["potential"]
    basis = create_multispecies_basis_config(potential)
    cutoff = max(float(bond["rcut"]) for bond in potential["bonds"].values())
    entries = []
    n_atoms = sum(len(atoms) for atoms in sample)
    for atoms in sample:
        entry = generate_tp_atoms(atoms, cutoff=cutoff)
        if entry is None:
            raise ValueError(f"no neighbour list for a structure of {len(atoms)} atoms")
        # pacemaker's normalised weights: energies per structure, forces per atom.
        entry["_eweights"] = np.full((1, 1), 1.0 / len(sample))
        entry["_fweights"] = np.full((len(atoms), 1), 1.0 / n_atoms)
        entries.append(entry)
    kappa = float(settings["kappa"])
    loss_specs = {
        LOSS_TYPE: "per-atom",
        LOSS_FORCE_FACTOR: kappa,
        LOSS_ENERGY_FACTOR: 1.0 - kappa,
        L1_REG: 1e-8,
        L2_REG: 1e-8,
    }
    tensorpot = TensorPotential(
        ACE(basis, compute_orthogonality=False, compute_smoothness=False), loss_specs=loss_specs
    )
    coefficients = tensorpot.potential.get_coefs().numpy()
    one_batch = [supply_batch(entries)]
    per_structure = [supply_batch([entry]) for entry in entries]
    ready = time.monotonic()

    def evaluate(batches: list[dict[str, Any]], step: int) -> float:
        """One evaluation as pacemaker's fit_func does it: loss and gradient of every batch."""
        started = time.perf_counter()
        trial = coefficients * (1.0 + 1e-3 * step)  # a new point, as the optimiser's
        for batch in batches:
            loss, gradient, _, _ = tensorpot.external_fit(trial, batch)
            float(loss.numpy()), gradient.numpy()
        return time.perf_counter() - started

    first = evaluate(one_batch, 0)  # TensorFlow traces the graph here
    whole = [evaluate(one_batch, step) for step in range(1, settings["evaluations"] + 1)]
    split = [evaluate(per_structure, -step) for step in range(1, settings["split_evaluations"] + 1)]
    return {
        "sample_structures": len(sample),
        "sample_atoms": n_atoms,
        "sample_pairs": int(sum(len(entry["_ind_i"]) for entry in entries)),
        "total_functions": int(basis.total_number_of_functions),
        "seconds_one_batch": float(np.median(whole)),
        "seconds_per_structure_batches": float(np.median(split)),
        "tracing_s": max(0.0, first - float(np.median(whole))),
        "startup_s": ready - began,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
