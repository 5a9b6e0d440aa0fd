"""Measuring what a pacemaker iteration costs here: a short pacemaker fit on a sample of the data.

The probe runs pacemaker itself, with the fit's own input (basis, loss, batch size, test
split) and the fit's threads and devices (the profile's), on a random sample of whole
structures holding about PROBE_SAMPLE_ATOMS atoms, for PROBE_ITERATIONS iterations, in a
temporary directory. pacemaker's log then says (``pacemaker_log.read_fit_timing``):

- its start-up before the first iteration: Python, TensorFlow and the tracing of the graph of
  this basis (the bulk of the fit's start-up);
- the time of one loss evaluation per training atom: pacemaker's own "Time/eval" (µs/atom),
  which ``cost.py`` scales to the training set;
- what an iteration costs besides its evaluations: the optimiser's step and saving the interim
  potential after every iteration, which grow with the basis, not with the data.

Nothing of TensorFlow or pyace is imported here: what is timed is the program that will fit.
The caller runs it only with python-ace's own ``pacemaker`` script (``check_pacemaker``: not a
wrapper or a fake), within a time limit; otherwise it falls back to the calibrated model.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.infrastructure.pacemaker.data_file import dataset_to_dataframe, write_data_file
from mlip_autopipec.infrastructure.pacemaker.input_yaml import DataSection, PacemakerInput
from mlip_autopipec.infrastructure.pacemaker.log import read_fit_timing
from mlip_autopipec.infrastructure.rundir.files import DATA_FILE, INPUT_YAML
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile, log_name

#: Atoms of the sample fitted (whole structures drawn at random; all of a smaller dataset).
PROBE_SAMPLE_ATOMS = 1500
#: Iterations of the probe's fit: enough for medians of the evaluation and of the step.
PROBE_ITERATIONS = 12
#: s the probe may take in all, unless the caller expects it to take longer (a busy machine,
#: many species blocks).
PROBE_TIME_LIMIT_S = 150.0
#: The probe's test share when the fit has a test set: pacemaker traces its evaluation too.
PROBE_TEST_SIZE = 0.1


class ProbeUnavailable(Exception):
    """The probe cannot run or did not finish here; the message says why."""


@dataclass(frozen=True)
class ProbeTiming:
    """What pacemaker's short fit on the sample took (s of wall time)."""

    sample_structures: int
    sample_atoms: int
    total_functions: int  # of the basis timed
    startup_s: float  # from pacemaker's start until its first iteration began
    evaluation_s_per_atom: float  # one loss evaluation, per training atom (pacemaker's timer)
    step_s: float  # what an iteration costs besides its evaluations
    wall_s: float  # the whole probe, as seen by the caller


def check_pacemaker(pacemaker: str) -> None:
    """Raises ProbeUnavailable unless ``pacemaker`` is python-ace's own script: the cost of a
    wrapper or a fake would not be pacemaker's."""
    try:
        with open(pacemaker, "rb") as script:
            head = script.read(4096).decode("utf-8", errors="replace")
    except OSError as error:
        raise ProbeUnavailable(f"cannot read {pacemaker}: {error.strerror}") from error
    if not head.startswith("#!") or "pyace" not in head:
        raise ProbeUnavailable(f"{pacemaker} is not python-ace's pacemaker script")


def probe_input(pacemaker_input: PacemakerInput, *, with_test_set: bool) -> PacemakerInput:
    """The fit's input for the probe: the sample's data file, PROBE_ITERATIONS iterations, no
    callbacks or early stopping, and a test split when the fit has a test set. The basis is
    built afresh: a potential file to start from (an upfit's, a resumed fit's) holds the same
    functions, and only its coefficients, which cost nothing, would differ."""
    data = DataSection(filename=DATA_FILE, test_size=PROBE_TEST_SIZE if with_test_set else None)
    fit = pacemaker_input.fit.model_copy(
        update={
            "maxiter": PROBE_ITERATIONS,
            "callbacks": None,
            "early_stopping_patience": None,
            "min_relative_test_loss_per_iter": None,
            "min_relative_train_loss_per_iter": None,
        }
    )
    # No test evaluation during the probe's iterations: one at the start, as in the fit.
    backend = pacemaker_input.backend.model_copy(update={"display_step": 10 * PROBE_ITERATIONS})
    potential = pacemaker_input.potential.model_copy(
        update={"filename": None, "initial_potential": None}
    )
    return pacemaker_input.model_copy(
        update={"potential": potential, "data": data, "fit": fit, "backend": backend}
    )


def run_probe(
    profile: ProgramProfile,
    pacemaker_input: PacemakerInput,
    sample: Dataset,
    *,
    total_functions: int,
    with_test_set: bool,
    time_limit_s: float = PROBE_TIME_LIMIT_S,
) -> ProbeTiming:
    """Fit ``sample`` for PROBE_ITERATIONS iterations with ``pacemaker_input`` (the fit's
    input, whose basis has ``total_functions`` functions) through ``profile``, and read what
    it cost from pacemaker's log; ProbeUnavailable when it fails or overruns. The caller
    checks first that the profile's pacemaker is python-ace's (``check_pacemaker``)."""
    started = time.monotonic()
    quiet = dataclasses.replace(profile, progress=None, time_limit_s=time_limit_s)
    with tempfile.TemporaryDirectory(prefix="mlip_autopipec_probe_") as name:
        directory = Path(name)
        # Labels near the fit's scale: the sample's energies less their mean per atom.
        per_atom = float(np.mean([s.energy / len(s.atoms) for s in sample]))
        frame = dataset_to_dataframe(sample, dict.fromkeys(sample.elements, per_atom))
        write_data_file(frame, directory / DATA_FILE)
        probe_input(pacemaker_input, with_test_set=with_test_set).write(directory / INPUT_YAML)
        try:
            quiet.run("pacemaker", [INPUT_YAML], directory)
        except TrainerError as error:
            said = [line.strip() for line in error.log_tail if line.strip()]
            raise ProbeUnavailable(error.message + (f": {said[-1]}" if said else "")) from error
        timing = read_fit_timing(directory / log_name("pacemaker"))
    if (
        timing.evaluation_s_per_atom is None
        or timing.seconds_per_iteration is None
        or timing.seconds_per_evaluation is None
        or timing.started_at is None
        or timing.first_iteration_at is None
    ):
        raise ProbeUnavailable("pacemaker's log of the probe shows too few iterations")
    training_atoms = sample.n_atoms * (1.0 - (PROBE_TEST_SIZE if with_test_set else 0.0))
    evaluation_s = timing.evaluation_s_per_atom * training_atoms
    evaluations_per_iteration = timing.seconds_per_iteration / timing.seconds_per_evaluation
    step_s = timing.seconds_per_iteration - evaluations_per_iteration * evaluation_s
    first = (timing.first_iteration_at - timing.started_at).total_seconds()
    return ProbeTiming(
        sample_structures=len(sample),
        sample_atoms=sample.n_atoms,
        total_functions=total_functions,
        startup_s=max(0.0, first - timing.seconds_per_iteration),
        evaluation_s_per_atom=timing.evaluation_s_per_atom,
        step_s=max(0.0, step_s),
        wall_s=time.monotonic() - started,
    )
