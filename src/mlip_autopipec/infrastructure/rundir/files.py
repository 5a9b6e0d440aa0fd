"""Every file a training writes into its run directory, by name, and what a new run replaces.

One place to look up what a file of a run directory is. The names are pacemaker's own where
pacemaker writes the file; a program's log is ``PROGRAM.log``.
"""

from __future__ import annotations

from mlip_autopipec.analysis.dimers import DIMERS_PNG as DIMERS_PNG
from mlip_autopipec.domain_models.neighbours import NEIGHBOURS_FILE as NEIGHBOURS_FILE
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON as POTENTIAL_JSON

# --- Ours: the run directory's own files (rundir.claim)
MANIFEST = ".mlip-autopipec-run.json"
LOCK_FILE = ".mlip-autopipec.lock"
#: A finished run's record (``potential.json``): such a run is never replaced.
FINISHED_RECORD = POTENTIAL_JSON

# --- The data handed to pacemaker
#: pacemaker's data file: a gzip-pickled pandas DataFrame (written by us, read by pacemaker).
DATA_FILE = "training_data.pckl.gzip"
#: The fixed test set given with ``test_dataset`` (pacemaker's ``data: test_filename``).
TEST_DATA_FILE = "test_data.pckl.gzip"
#: The structures handed to pacemaker, with their original labels, in a format that cannot run
#: code when read (``evaluate`` and later generations read this, never the pickle).
TRAINING_SET = "training_set.extxyz"
#: A safe copy of the fixed test set (``wait``, resume and a next generation read it).
TEST_SET = "test_set.extxyz"
#: pacemaker's input.
INPUT_YAML = "input.yaml"

# --- pacemaker's outputs of a fit
OUTPUT_POTENTIAL_YAML = "output_potential.yaml"
#: pacemaker's copy of the training data it fitted (with its own columns).
FITTING_DATA = "fitting_data_info.pckl.gzip"
#: pacemaker's copy of the test data.
TEST_DATA_INFO = "test_data_info.pckl.gzip"
TRAIN_METRICS_TXT = "metrics.txt"
TEST_METRICS_TXT = "test_metrics.txt"
TRAIN_CYCLE_METRICS_TXT = "cycle_metrics.txt"
TEST_CYCLE_METRICS_TXT = "test_cycle_metrics.txt"
TRAIN_PREDICTIONS = "train_pred.pckl.gzip"
TEST_PREDICTIONS = "test_pred.pckl.gzip"
#: pacemaker's potential of the last iteration of fit cycle 0, saved after every iteration.
INTERIM_POTENTIAL = "interim_potential_0.yaml"
#: The programs' logs.
PACEMAKER_LOG = "pacemaker.log"
YAML2YACE_LOG = "pace_yaml2yace.log"
ACTIVESET_LOG = "pace_activeset.log"

# --- What we make of them
#: The predictions copied to a format that cannot run code (the report reads these).
TRAIN_PREDICTIONS_NPZ = "train_predictions.npz"
TEST_PREDICTIONS_NPZ = "test_predictions.npz"
#: The deployable potential (pace_yaml2yace).
POTENTIAL_YACE = "potential.yace"
#: The active set of the fitted potential (pace_activeset).
ACTIVE_SET = "output_potential.asi"
#: The placeholder potential of the mock trainer.
MOCK_POTENTIAL = "mock_potential.yace"

# --- A selection (pace_select), in its own folder
SELECTION_DIR = "selection"
SELECTION_JSON = "selection.json"
TARGET_BASIS_YAML = "target_basis.yaml"
CANDIDATES = "candidates.pckl.gzip"

# --- A next generation
#: The parent's B-basis potential, copied into the run directory: where pacemaker starts.
PARENT_POTENTIAL = "parent_potential.yaml"

# --- An interrupted run: resume and finish
#: The record of a local run: its config and what the post-processing needs.
RUN_RECORD = "run_record.json"
#: A copy of the interim potential that a resumed fit starts from (pacemaker overwrites its own).
RESUME_START = "resume_start.yaml"
#: pacemaker's input of a resumed fit, and of the predictions of ``finish``.
RESUME_INPUT_YAML = "input_resume.yaml"
FINISH_INPUT_YAML = "input_finish.yaml"
#: ``{"resumed_from_iteration": N}``: the iterations before the last resumed fit began.
RESUME_JSON = "resume.json"
#: The log of pacemaker's predictions for ``finish`` (pacemaker.log keeps the fit's iterations).
FINISH_LOG = "pacemaker_finish.log"

# --- A batch run
#: The record of a batch run: its job and what the post-processing needs.
BATCH_JOB_JSON = "batch_job.json"
#: The steps the job runs on the compute node, and what became of them.
JOB_STEPS_JSON = "job_steps.json"
JOB_RESULT_JSON = "job_result.json"
#: The job's own output, and the user's setup lines it runs first.
JOB_OUTPUT = "batch_job.log"
SETUP_SCRIPT = "job_setup.sh"
#: psij's files: the job script it generated, the job's exit code.
SCHEDULER_DIR = "scheduler"

# --- What a new run replaces
#: Files a finished pacemaker run leaves.
RESULT_FILES = (
    OUTPUT_POTENTIAL_YAML,
    TRAIN_PREDICTIONS,
    TEST_PREDICTIONS,
    TRAIN_METRICS_TXT,
    TEST_METRICS_TXT,
    TRAIN_CYCLE_METRICS_TXT,
    TEST_CYCLE_METRICS_TXT,
    FITTING_DATA,
    TRAIN_PREDICTIONS_NPZ,
    TEST_PREDICTIONS_NPZ,
)
#: The files of an interrupted run that a new fit starts over from.
RESUME_FILES = (INTERIM_POTENTIAL, RESUME_START, RESUME_INPUT_YAML, FINISH_INPUT_YAML, RESUME_JSON)
#: What a batch run writes besides a local one's files.
BATCH_FILES = (BATCH_JOB_JSON, JOB_STEPS_JSON, JOB_RESULT_JSON, JOB_OUTPUT, SETUP_SCRIPT, TEST_SET)
#: What a new fit must not find stale in its run directory (only what a run of ours wrote is
#: removed: rundir.claim).
REPLACED = (
    *RESULT_FILES,
    POTENTIAL_YACE,
    ACTIVE_SET,
    TEST_SET,
    PARENT_POTENTIAL,
    *RESUME_FILES,
    *BATCH_FILES,
)
#: What a resumed or finished fit replaces of the interrupted one (never its interim potential).
RESUME_REPLACES = (*RESULT_FILES, POTENTIAL_YACE, ACTIVE_SET)
