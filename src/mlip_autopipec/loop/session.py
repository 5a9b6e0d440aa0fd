"""Starting and resuming a loop: claim its directory, keep copies of its inputs, run, record the
stop, write the report."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import ase.io
import yaml
from ase import Atoms

from mlip_autopipec.config.loop import LoopConfig, load_loop_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.neighbours import NeighbourTable
from mlip_autopipec.errors import ConfigurationError, OutputError
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.loop.directory import claim_run_directory, is_ours
from mlip_autopipec.loop.parts import LoopParts
from mlip_autopipec.loop.records import (
    CONFIG_FILE,
    DATA_FILE,
    INPUTS_DIR,
    LOOP_JSON,
    STRUCTURES_FILE,
    TEST_DATA_FILE,
    LoopRecord,
    read_record,
    write_record,
)
from mlip_autopipec.loop.runner import LoopInputs, LoopRunner
from mlip_autopipec.loop.stop import Stop, oracle_calls_made

log = logging.getLogger("mlip_autopipec.loop")


@dataclass(frozen=True)
class LoopResult:
    """How a loop ended: why, after how many oracle calls, with which last generation."""

    loop_dir: Path
    stop_reason: str
    message: str
    oracle_calls: int
    last_generation: Path | None


def run_loop(
    config: LoopConfig,
    structures: Sequence[Atoms],
    out: Path,
    *,
    data: Dataset | None = None,
    test_data: Dataset | None = None,
    parts: LoopParts | None = None,
) -> LoopResult:
    """Run the active-learning loop in the new (or empty) directory ``out``: generation 0 from
    ``data`` (or from oracle labels of rattled ``structures``), then explore from
    ``structures`` → select → label → train, until a stop criterion of ``config.loop`` holds."""
    if not structures:
        raise ConfigurationError([("--structures", "holds no structure to start MD from")])
    out = Path(out)
    if (out / LOOP_JSON).exists():
        raise OutputError(
            f"{out} holds a loop already: continue it with 'mlip-autopipec loop --resume {out}', "
            "or choose another directory",
            path=out,
        )
    with claim_run_directory(out) as run:
        inputs = LoopInputs(config, list(structures), data, test_data)
        _write_inputs(run.path, inputs)
        record = LoopRecord(has_data=data is not None, has_test_data=test_data is not None)
        write_record(run.path / LOOP_JSON, record)
        return _drive(run.path, inputs, record, parts or LoopParts())


def resume_loop(
    loop_dir: Path, *, config: LoopConfig | None = None, parts: LoopParts | None = None
) -> LoopResult:
    """Continue the loop of ``loop_dir`` at the step where it stopped. ``config`` may change the
    ``loop:`` section alone (e.g. raise a cap); the trainer, oracle and explorer stay."""
    loop_dir = Path(loop_dir)
    if not is_ours(loop_dir) or not (loop_dir / LOOP_JSON).exists():
        raise OutputError(
            f"{loop_dir} is not the directory of a loop (no {LOOP_JSON})", path=loop_dir
        )
    with claim_run_directory(loop_dir, resume=True) as run:
        record = read_record(run.path / LOOP_JSON, LoopRecord)
        assert record is not None  # checked above, under the lock now
        inputs = read_inputs(run.path, record)
        if config is not None:
            inputs = _with_new_settings(inputs, config, run.path)
        return _drive(run.path, inputs, record, parts or LoopParts())


def read_inputs(loop_dir: Path, record: LoopRecord) -> LoopInputs:
    """The inputs a loop was started with, from its copies in ``inputs/``."""
    inputs = loop_dir / INPUTS_DIR
    config = load_loop_config(inputs / CONFIG_FILE)
    structures = ase.io.read(inputs / STRUCTURES_FILE, index=":", format="extxyz")
    data = None
    if record.has_data:  # checked with the neighbour searches that generation 0's fit reuses
        data = Dataset.read(inputs / DATA_FILE, neighbours=NeighbourTable(config.trainer.cutoff))
    return LoopInputs(
        config=config,
        structures=list(structures) if isinstance(structures, list) else [structures],
        data=data,
        test_data=Dataset.read(inputs / TEST_DATA_FILE) if record.has_test_data else None,
    )


def _write_inputs(loop_dir: Path, inputs: LoopInputs) -> None:
    directory = loop_dir / INPUTS_DIR
    directory.mkdir(exist_ok=True)
    _write_config(directory / CONFIG_FILE, inputs.config)
    ase.io.write(directory / STRUCTURES_FILE, inputs.structures, format="extxyz")
    if inputs.data is not None:
        inputs.data.write(directory / DATA_FILE)
    if inputs.test_data is not None:
        inputs.test_data.write(directory / TEST_DATA_FILE)


def _write_config(path: Path, config: LoopConfig) -> None:
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    write_text_atomic(path, text)


def _with_new_settings(inputs: LoopInputs, config: LoopConfig, loop_dir: Path) -> LoopInputs:
    changed = [
        section
        for section in ("trainer", "oracle", "explorer")
        if getattr(config, section).model_dump(mode="json")
        != getattr(inputs.config, section).model_dump(mode="json")
    ]
    if changed:
        raise ConfigurationError(
            [
                (section, "differs from the loop's: a resumed loop may change loop: only")
                for section in changed
            ]
        )
    _write_config(loop_dir / INPUTS_DIR / CONFIG_FILE, config)
    log.info("the loop's settings (loop:) are now those of the given config")
    return LoopInputs(config, inputs.structures, inputs.data, inputs.test_data)


def _drive(loop_dir: Path, inputs: LoopInputs, record: LoopRecord, parts: LoopParts) -> LoopResult:
    runner = LoopRunner(loop_dir, inputs, parts)
    if record.stop_reason is not None:  # an earlier session's stop: this session decides anew
        record = record.model_copy(
            update={"stop_reason": None, "stop_message": None, "stopped_at": None}
        )
        write_record(loop_dir / LOOP_JSON, record)
    stop: Stop = runner.run()
    record = record.model_copy(
        update={
            "stop_reason": stop.reason,
            "stop_message": stop.message,
            "stopped_at": datetime.now(UTC),
        }
    )
    write_record(loop_dir / LOOP_JSON, record)
    parts.report(loop_dir)
    log.info("loop stopped: %s", stop.message)
    from mlip_autopipec.loop.status import last_generation

    return LoopResult(
        loop_dir=loop_dir,
        stop_reason=stop.reason,
        message=stop.message,
        oracle_calls=oracle_calls_made(loop_dir),
        last_generation=last_generation(loop_dir),
    )
