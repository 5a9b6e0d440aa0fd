"""``loop status``: what a loop directory holds, read from its records alone (nothing is run)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlip_autopipec.errors import OutputError
from mlip_autopipec.loop.directory import is_held, read_manifest
from mlip_autopipec.loop.records import (
    EXPLORE,
    LABEL,
    LOOP_JSON,
    SELECT,
    STEPS,
    TRAIN,
    iteration_dir,
    record_path,
)
from mlip_autopipec.loop.stop import oracle_calls_made, wall_time_used


@dataclass(frozen=True)
class IterationRecords:
    """The completed steps' records of one iteration (a missing step: not done)."""

    iteration: int
    steps: dict[str, dict[str, Any]]


def iteration_records(loop_dir: Path) -> list[IterationRecords]:
    """Every iteration's records, generation 0 first."""
    result = []
    iteration = 0
    while iteration_dir(loop_dir, iteration).exists():
        steps = {}
        for step in STEPS:
            path = record_path(loop_dir, iteration, step)
            if path.exists():
                try:
                    steps[step] = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
        result.append(IterationRecords(iteration, steps))
        iteration += 1
    return result


def last_generation(loop_dir: Path) -> Path | None:
    """The run directory of the loop's last trained generation, or None."""
    for records in reversed(iteration_records(loop_dir)):
        train = records.steps.get(TRAIN)
        if train is not None:
            return loop_dir / str(train["run_dir"])
    return None


def read_loop_json(loop_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((loop_dir / LOOP_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{loop_dir} is not the directory of a loop (no {LOOP_JSON})") from None
    except (OSError, ValueError) as error:
        raise OutputError(f"{loop_dir / LOOP_JSON} cannot be read: {error}") from None
    if not isinstance(data, dict):
        raise OutputError(f"{loop_dir / LOOP_JSON} is not a loop record")
    return data


def _manifest_status(loop_dir: Path) -> str | None:
    manifest = read_manifest(loop_dir)
    return None if manifest is None else str(manifest.get("status"))


def _step_summary(step: str, data: dict[str, Any]) -> str:
    if step == EXPLORE:
        gamma = data.get("max_gamma")
        shown = "-" if gamma is None else f"{gamma:.2f}"
        full = "full length" if data.get("all_full_length") else "stopped early"
        return (
            f"explore: {data.get('n_candidates')} candidates, max gamma {shown}, "
            f"{data.get('n_frames_above_lower')}/{data.get('n_checked_frames')} frames above "
            f"gamma_lower, {full}"
        )
    if step == SELECT:
        return f"select: {data.get('n_selected')} of {data.get('n_candidates')} candidates"
    if step == LABEL:
        return (
            f"label: {data.get('n_labelled')}/{data.get('n_structures')} labelled, "
            f"{data.get('n_calls')} calls, {data.get('n_failed')} failed"
        )
    force = data.get("test_force_rmse_mev") or data.get("train_force_rmse_mev")
    shown = "" if force is None else f", force RMSE {force:.1f} meV/Å"
    return f"train: generation {data.get('generation')} in {data.get('run_dir')}{shown}"


def loop_status(loop_dir: Path) -> str:
    """A few lines saying what the loop of ``loop_dir`` did, is doing, and why it stopped."""
    loop_dir = Path(loop_dir)
    record = read_loop_json(loop_dir)
    status = _manifest_status(loop_dir)
    if is_held(loop_dir):
        state = "running"
    elif record.get("stop_reason"):
        state = f"stopped ({record['stop_reason']}): {record.get('stop_message')}"
    elif status == "running":
        state = f"killed: continue with 'mlip-autopipec loop --resume {loop_dir}'"
    else:
        state = f"{status or 'unknown'}: continue with 'mlip-autopipec loop --resume {loop_dir}'"
    lines = [f"loop {loop_dir}: {state}"]
    for records in iteration_records(loop_dir):
        done = [_step_summary(step, data) for step, data in records.steps.items()]
        lines.append(f"  iteration {records.iteration}: " + ("; ".join(done) or "nothing done"))
    lines.append(
        f"oracle calls: {oracle_calls_made(loop_dir)}; wall time of the completed steps: "
        f"{wall_time_used(loop_dir):.0f} s"
    )
    last = last_generation(loop_dir)
    if last is not None:
        lines.append(f"last generation: {last}")
    return "\n".join(lines)
