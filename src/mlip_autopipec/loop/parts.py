"""The four parts the loop calls (explore, select, label, train) and evaluation, behind one small
interface: the real ones by default, fakes in tests. Each returns plain values the loop records."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.config.explorer import ExplorerConfig
from mlip_autopipec.config.oracle import OracleConfig
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.metrics import FitMetrics
from mlip_autopipec.domain_models.potential import Potential

#: Receives one line of progress (a stage's own output).
ProgressLine = Callable[[str], None]


@dataclass(frozen=True)
class ExploreOutcome:
    """Candidate frames (``info['max_gamma']`` set) and one summary per trajectory, with
    ``steps_done``, ``steps_planned``, ``max_gamma``, ``n_checked_frames``,
    ``n_frames_above_lower`` and ``stop_reason`` among its keys."""

    candidates: list[Atoms]
    trajectories: list[dict[str, Any]]


@dataclass(frozen=True)
class LabelOutcome:
    """The labelled structures (None: none was labelled), the failures, the oracle's work."""

    dataset: Dataset | None
    failures: list[dict[str, Any]]
    n_calls: int
    n_cached: int


@dataclass(frozen=True)
class SelectOutcome:
    """Positions of the chosen candidates, in selection order, and how they were chosen."""

    indices: list[int]
    method: str


Explore = Callable[[Potential, Sequence[Atoms], ExplorerConfig, Path, ProgressLine], ExploreOutcome]
Select = Callable[
    [TrainerConfig, Potential, Sequence[Atoms], int | None, int | None, Path], SelectOutcome
]
Label = Callable[[Sequence[Atoms], OracleConfig, Path, Path, ProgressLine], LabelOutcome]
Train = Callable[[TrainerConfig, Dataset, Path, Potential | None, ProgressLine], Potential]
Evaluate = Callable[[Potential, Dataset], FitMetrics]
Report = Callable[[Path], object]


def _as_dict(value: Any) -> dict[str, Any]:
    """A record of the parts (a dataclass or a pydantic model) as a JSON-ready mapping."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = dataclasses.asdict(value)
    elif hasattr(value, "model_dump"):
        data = value.model_dump(mode="json")
    else:
        data = dict(value)
    return {
        key: item if isinstance(item, str | int | float | bool | None) else str(item)
        for key, item in data.items()
    }


def explore(
    potential: Potential,
    structures: Sequence[Atoms],
    config: ExplorerConfig,
    workdir: Path,
    progress: ProgressLine,
) -> ExploreOutcome:
    """MD with ``potential`` from ``structures`` at the configured conditions (explorer.md)."""
    from mlip_autopipec.explorer.md import explore as run_md
    from mlip_autopipec.explorer.trajectory import TrajectorySummary

    def show(done: int, total: int, summary: TrajectorySummary) -> None:
        pressure = "" if summary.pressure_GPa is None else f", {summary.pressure_GPa:g} GPa"
        progress(
            f"trajectory {done}/{total} ({summary.temperature_K:g} K{pressure}): "
            f"{summary.steps_done}/{summary.steps_planned} steps, max gamma "
            f"{summary.max_gamma:.2f}, {summary.n_candidates} candidates, {summary.stop_reason}"
        )

    exploration = run_md(potential, list(structures), config, workdir, progress=show)
    return ExploreOutcome(
        candidates=list(exploration.candidates),
        trajectories=[_as_dict(summary) for summary in exploration.trajectories],
    )


def label(
    structures: Sequence[Atoms],
    config: OracleConfig,
    cache_dir: Path,
    jobs_dir: Path,
    progress: ProgressLine,
) -> LabelOutcome:
    """The oracle's energies and forces of ``structures``, cached in ``cache_dir``: in worker
    processes here, or as batch jobs (their files in ``jobs_dir``) as ``config.execution`` says.
    Too many failures raise OracleError."""
    from mlip_autopipec.infrastructure.oracle_jobs import label as run_oracle

    shown = 0

    def show(done: int, total: int) -> None:
        nonlocal shown
        if done == total or done - shown >= max(1, total // 10):  # about every 10 %
            shown = done
            progress(f"{done}/{total} structures")

    result = run_oracle(list(structures), config, cache_dir, show, jobs_dir=jobs_dir)
    return LabelOutcome(
        dataset=result.dataset if len(result.dataset) else None,
        failures=[_as_dict(failure) for failure in result.failures],
        n_calls=result.n_calls,
        n_cached=result.n_cached,
    )


def select(
    config: TrainerConfig,
    potential: Potential,
    candidates: Sequence[Atoms],
    max_structures: int | None,
    max_atoms: int | None,
    workdir: Path,
) -> SelectOutcome:
    """D-optimal selection of unlabelled candidates against ``potential``'s active set."""
    from mlip_autopipec.loop.selection import select_candidates

    return select_candidates(config, potential, candidates, max_structures, max_atoms, workdir)


def train(
    config: TrainerConfig,
    dataset: Dataset,
    run_dir: Path,
    previous: Potential | None,
    progress: ProgressLine,
) -> Potential:
    """The next generation (``previous``'s data plus ``dataset``), or generation 0."""
    from mlip_autopipec.infrastructure.trainer import create_trainer
    from mlip_autopipec.report import build_report_or_warn

    del progress  # pacemaker's output is logged by the trainer itself at DEBUG
    trainer = create_trainer(config, report=build_report_or_warn)  # each generation's report
    return trainer.train(dataset, run_dir, previous=previous)


def evaluate(potential: Potential, dataset: Dataset) -> FitMetrics:
    """Energy and force errors of ``potential`` on ``dataset`` (the loop's --test-data)."""
    from mlip_autopipec.analysis.evaluation import evaluate_potential

    return evaluate_potential(potential, dataset).metrics


def report(loop_dir: Path) -> Path | None:
    """The loop's HTML report, rebuilt from its records (a failure is a warning)."""
    from mlip_autopipec.loop.report import write_loop_report_or_warn

    return write_loop_report_or_warn(loop_dir)


@dataclass(frozen=True)
class LoopParts:
    """What the loop calls; replace any of them (tests use fakes)."""

    explore: Explore = field(default=explore)
    select: Select = field(default=select)
    label: Label = field(default=label)
    train: Train = field(default=train)
    evaluate: Evaluate = field(default=evaluate)
    report: Report = field(default=report)
