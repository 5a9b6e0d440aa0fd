"""The loop directory's layout and the JSON record of each step: a step is done when its record
exists (records are written atomically, last), so a resumed loop skips it and redoes the rest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlip_autopipec.errors import OutputError
from mlip_autopipec.files import write_text_atomic

#: The loop's own record: its inputs, its config, and why it stopped.
LOOP_JSON = "loop.json"
#: Copies of the user's inputs, so that a resumed loop never depends on files elsewhere.
INPUTS_DIR = "inputs"
STRUCTURES_FILE = "structures.extxyz"
DATA_FILE = "data.extxyz"
TEST_DATA_FILE = "test_data.extxyz"
CONFIG_FILE = "loop.yaml"
#: The oracle's label cache, shared by every iteration (a structure is never labelled twice).
LABEL_CACHE_DIR = "label_cache"
REPORT_DIR = "report"

#: The steps of an iteration, in order; generation 0 has only label (without --data) and train.
EXPLORE, SELECT, LABEL, TRAIN = "explore", "select", "label", "train"
STEPS = (EXPLORE, SELECT, LABEL, TRAIN)
#: The structures a step hands to the next, in its directory.
CANDIDATES_FILE = "candidates.extxyz"
SELECTED_FILE = "selected.extxyz"
LABELLED_FILE = "labelled.extxyz"


def iteration_dir(loop_dir: Path, iteration: int) -> Path:
    return loop_dir / f"iter_{iteration:03d}"


def step_dir(loop_dir: Path, iteration: int, step: str) -> Path:
    return iteration_dir(loop_dir, iteration) / step


def record_path(loop_dir: Path, iteration: int, step: str) -> Path:
    return iteration_dir(loop_dir, iteration) / f"{step}.json"


class Record(BaseModel):
    """What every step's record holds: when it ended and its wall time."""

    model_config = ConfigDict(extra="forbid")

    wall_s: float = Field(description="s, wall time of the step (its last, completed attempt)")
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ExploreRecord(Record):
    n_candidates: int
    trajectories: list[dict[str, Any]] = Field(description="the explorer's summary of each")
    max_gamma: float | None
    n_checked_frames: int
    n_frames_above_lower: int
    all_full_length: bool = Field(description="every trajectory ran all its planned steps")
    converged: bool


class SelectRecord(Record):
    n_candidates: int
    n_selected: int
    n_atoms: int
    cap_structures: int | None
    cap_atoms: int | None
    indices: list[int] = Field(description="positions in the candidates, in selection order")
    method: str


class LabelRecord(Record):
    n_structures: int
    n_labelled: int
    n_failed: int
    n_calls: int = Field(description="oracle calculations run by this step (not from the cache)")
    n_cached: int
    failures: list[dict[str, Any]]


class TrainRecord(Record):
    run_dir: str = Field(description="the generation's run directory, relative to the loop's")
    generation: int
    n_new_structures: int
    train_energy_rmse_mev: float | None = None
    train_force_rmse_mev: float | None = None
    test_energy_rmse_mev: float | None = None
    test_force_rmse_mev: float | None = None
    test_data_energy_rmse_mev: float | None = Field(None, description="on --test-data")
    test_data_force_rmse_mev: float | None = None
    startup_s: float | None = Field(None, description="s of the fit before its first iteration")


class LoopRecord(BaseModel):
    """``loop.json``: written when the loop starts, updated when it stops."""

    model_config = ConfigDict(extra="forbid")

    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    has_data: bool = Field(description="generation 0 trained on --data (not oracle labels)")
    has_test_data: bool
    stop_reason: str | None = None
    stop_message: str | None = None
    stopped_at: datetime | None = None


R = TypeVar("R", bound=BaseModel)


def write_record(path: Path, record: BaseModel) -> None:
    write_text_atomic(path, record.model_dump_json(indent=1) + "\n")


def read_record(path: Path, kind: type[R]) -> R | None:
    """The record at ``path``, or None when the step has not completed; a record that cannot be
    read is an error naming it (it is never silently redone over)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return kind.model_validate(json.loads(text))
    except (ValueError, ValidationError) as error:
        raise OutputError(f"{path}: unreadable record of the loop ({error})", path=path) from None
