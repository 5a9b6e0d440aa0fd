"""When the loop stops: converged, or a cap on iterations, oracle calls or wall time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlip_autopipec.config.loop import LoopSettings
from mlip_autopipec.loop.records import LABEL, ExploreRecord

#: Why a loop stops (``loop.json``'s ``stop_reason``).
STOP_REASONS = (
    "converged",
    "max_iterations",
    "max_oracle_calls",
    "max_wall_time",
    "nothing_selected",
    "nothing_labelled",
)


@dataclass(frozen=True)
class Stop:
    """Why the loop stopped: one of STOP_REASONS and a sentence for the user."""

    reason: str
    message: str


def step_records(loop_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every completed step's record as (``iter_NNN/step``, data), in order."""
    records = []
    for path in sorted(loop_dir.glob("iter_*/*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            records.append((f"{path.parent.name}/{path.stem}", data))
    return records


def oracle_calls_made(loop_dir: Path) -> int:
    """Oracle calculations the completed label steps ran (cached labels not counted)."""
    return sum(
        int(data.get("n_calls", 0))
        for key, data in step_records(loop_dir)
        if key.endswith("/" + LABEL)
    )


def wall_time_used(loop_dir: Path) -> float:
    """s, the wall time of every completed step over all the loop's sessions."""
    return sum(float(data.get("wall_s", 0.0)) for _, data in step_records(loop_dir))


def check_caps(
    loop_dir: Path, settings: LoopSettings, iteration: int, *, exploring: bool
) -> Stop | None:
    """The cap that stops the loop before the next step of ``iteration``, if one does: before
    its exploration (``exploring``), or before it selects, labels and trains a generation.

    ``max_iterations`` counts generations trained after generation 0; the last one is still
    explored, so that the loop says whether it converged."""
    if iteration > settings.max_iterations and not exploring:
        return Stop(
            "max_iterations",
            f"reached loop.max_iterations: {settings.max_iterations} generations after "
            "generation 0 (the last one explored, not converged)",
        )
    calls = oracle_calls_made(loop_dir)
    if settings.max_oracle_calls is not None and calls >= settings.max_oracle_calls:
        return Stop(
            "max_oracle_calls",
            f"reached loop.max_oracle_calls: {calls} oracle calls made "
            f"(cap {settings.max_oracle_calls})",
        )
    used = wall_time_used(loop_dir)
    if settings.max_wall_time is not None and used >= settings.max_wall_time:
        return Stop(
            "max_wall_time",
            f"reached loop.max_wall_time: {used:.0f} s used (cap {settings.max_wall_time:.0f} s)",
        )
    return None


def convergence(
    record: ExploreRecord, fraction: float, iteration: int, fit_note: str | None = None
) -> Stop | None:
    """The stop of a converged exploration: every trajectory ran its full length, and at most
    ``fraction`` of the checked frames exceeded the lower gamma threshold.

    MD that no longer extrapolates says the data cover the conditions, not that the last fit
    made the most of them: ``fit_note``, the explored generation's note that its loss was still
    falling (``FitCost.still_improving``), is added to the message.
    """
    if not record.converged:
        return None
    message = (
        f"converged at iteration {iteration}: every trajectory ran its full length and "
        f"{record.n_frames_above_lower} of {record.n_checked_frames} checked frames exceeded "
        f"gamma_lower (at most {fraction:.0%} allowed); max gamma "
        + ("-" if record.max_gamma is None else f"{record.max_gamma:.2f}")
    )
    if fit_note:
        message += (
            f". Generation {iteration - 1} may be less accurate than its data allow: "
            f"{fit_note} (the loop's trainer section)"
        )
    return Stop("converged", message)
