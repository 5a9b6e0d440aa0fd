"""Fakes of the loop's parts: an explorer whose max gamma follows a script per generation, a
D-optimal selection that keeps the first candidates, an EMT oracle with a label cache on disk
that counts its real calls, and a trainer that writes a potential record without fitting."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.config.loop import LoopConfig, parse_loop_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.metrics import FitMetrics
from mlip_autopipec.domain_models.potential import FitCost, Potential, Provenance
from mlip_autopipec.loop.parts import ExploreOutcome, LabelOutcome, LoopParts, SelectOutcome
from mlip_autopipec.oracle.emt import label_with_emt

GAMMA_LOWER, GAMMA_UPPER = 5.0, 25.0
STEPS = 200


def loop_config(**loop: Any) -> LoopConfig:
    """A loop config with a mock trainer section and the EMT oracle."""
    return parse_loop_config(
        {
            "trainer": {"type": "mock", "cutoff": 5.0},
            "oracle": {"calculator": "ase.calculators.emt.EMT", "workers": 1},
            "explorer": {"temperatures_K": [300, 1200], "steps": STEPS},
            "loop": {"initial_structures": {"copies_per_structure": 2}, **loop},
        }
    )


def start_structures() -> list[Atoms]:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.info["name"] = "cu4"
    return [atoms]


class Interrupt(KeyboardInterrupt):
    """Ctrl-C raised by a fake part at a chosen (iteration, step)."""


class FakeParts:
    """The loop's parts as fakes; ``gammas[g]`` is the max gamma MD reaches with generation g
    (the last value repeats). ``interrupt_at`` = (iteration, step): that part raises Ctrl-C once,
    after doing its work (the worst moment: the work is done, its record is not); train raises
    it during the fit. ``still_improving``: every fit's note that its loss was still falling."""

    def __init__(
        self,
        gammas: Sequence[float] = (30.0,),
        select_none: bool = False,
        still_improving: str | None = None,
    ) -> None:
        self.gammas = list(gammas)
        self.still_improving = still_improving
        self.select_none = select_none
        self.interrupt_at: tuple[int, str] | None = None
        self.calls: Counter[tuple[int, str]] = Counter()
        self.oracle_calls = 0  # real calculations (not from the cache)
        self.cache_dirs: set[Path] = set()
        self.trained: list[dict[str, Any]] = []
        self.reports = 0

    def parts(self) -> LoopParts:
        return LoopParts(
            explore=self.explore,
            select=self.select,
            label=self.label,
            train=self.train,
            evaluate=self.evaluate,
            report=self.report,
        )

    def _done(self, iteration: int, step: str) -> None:
        self.calls[(iteration, step)] += 1
        if self.interrupt_at == (iteration, step):
            self.interrupt_at = None
            raise Interrupt

    @staticmethod
    def iteration_of(path: Path) -> int:
        """The iteration of a step's directory ``iter_NNN/<step>[/...]``."""
        return int(next(p for p in (path, *path.parents) if p.name.startswith("iter_")).name[5:])

    def explore(
        self, potential: Potential, structures: Sequence[Atoms], config: Any, workdir: Path, _: Any
    ) -> ExploreOutcome:
        generation = self.iteration_of(potential.run_dir)
        gamma = self.gammas[min(generation, len(self.gammas) - 1)]
        trajectories, candidates = [], []
        for temperature in config.temperatures_K:
            done = STEPS if gamma < GAMMA_UPPER else STEPS // 2
            above = 0 if gamma <= GAMMA_LOWER else 4
            trajectories.append(
                {
                    "temperature_K": temperature,
                    "steps_done": done,
                    "steps_planned": STEPS,
                    "max_gamma": gamma,
                    "n_checked_frames": 20,
                    "n_frames_above_lower": above,
                    "stop_reason": "gamma_upper" if done < STEPS else "completed",
                }
            )
            for k in range(above):
                atoms = structures[0].copy()
                atoms.rattle(0.05 + 0.01 * k, seed=int(temperature) + 97 * generation + k)
                atoms.info["max_gamma"] = gamma
                candidates.append(atoms)
        self._done(self.iteration_of(workdir), "explore")
        return ExploreOutcome(candidates, trajectories)

    def select(
        self,
        config: TrainerConfig,
        potential: Potential,
        candidates: Sequence[Atoms],
        max_structures: int | None,
        max_atoms: int | None,
        workdir: Path,
    ) -> SelectOutcome:
        count = 0 if self.select_none else len(candidates)
        if max_structures is not None:
            count = min(count, max_structures)
        self._done(self.iteration_of(workdir), "select")
        return SelectOutcome(list(range(count)), "fake: the first candidates")

    def label(
        self, structures: Sequence[Atoms], config: Any, cache_dir: Path, jobs: Path, _: Any
    ) -> LabelOutcome:
        self.cache_dirs.add(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        index_file = cache_dir / "fake_cache.json"
        known = set(json.loads(index_file.read_text())) if index_file.exists() else set()
        n_calls = n_cached = 0
        for atoms in structures:
            key = hashlib.sha256(np.round(atoms.positions, 8).tobytes()).hexdigest()
            if key in known:
                n_cached += 1
            else:
                n_calls += 1
                known.add(key)
        self.oracle_calls += n_calls
        index_file.write_text(json.dumps(sorted(known)))
        dataset = label_with_emt(structures, source="fake oracle")
        name = str(structures[0].info.get("name", ""))  # iter_NNN/candidate_k after selection
        self._done(int(name.split("/")[0][5:]) if name.startswith("iter_") else 0, "label")
        return LabelOutcome(dataset, [], n_calls, n_cached)

    def train(
        self,
        config: TrainerConfig,
        dataset: Dataset,
        run_dir: Path,
        previous: Potential | None,
        _: Any,
    ) -> Potential:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "fake.yace").write_text("fake\n")
        self._done(self.iteration_of(run_dir), "train")  # Ctrl-C here: during the fit
        potential = Potential(
            run_dir=run_dir,
            trainer="mock",
            yace_file="fake.yace",
            elements=dataset.elements,
            cutoff=config.cutoff,
            train_metrics=FitMetrics(
                energy_rmse_mev_per_atom=1.0,
                energy_mae_mev_per_atom=1.0,
                force_rmse_mev_per_angstrom=50.0 / (1 + len(self.trained)),
                force_mae_mev_per_angstrom=1.0,
            ),
            provenance=Provenance(data_sha256=None, config_sha256=None),
            cost=FitCost(
                estimated_s_per_iteration=0.1,
                estimated_iterations=10,
                estimated_total_s=5.0,
                startup_s=0.25,
                still_improving=self.still_improving,
            ),
        )
        potential.save()
        self.trained.append(
            {
                "run_dir": run_dir,
                "n_structures": len(dataset),
                "neighbours": dataset.neighbours,
                "previous": None if previous is None else previous.run_dir,
                "time_budget": config.fit.time_budget,
            }
        )
        return potential

    def report(self, loop_dir: Path) -> None:
        self.reports += 1  # drawn for real in test_report.py

    def evaluate(self, potential: Potential, dataset: Dataset) -> FitMetrics:
        return FitMetrics(
            energy_rmse_mev_per_atom=2.0,
            energy_mae_mev_per_atom=2.0,
            force_rmse_mev_per_angstrom=80.0,
            force_mae_mev_per_angstrom=60.0,
            n_structures=len(dataset),
        )


@pytest.fixture(name="fakes")
def fake_parts_class() -> type[FakeParts]:
    """The fakes' class: ``FakeParts(gammas=[...])`` in a test."""
    return FakeParts


@pytest.fixture(name="loop_config")
def loop_config_factory() -> Any:
    """``loop_config(**loop_section)``: a LoopConfig with a mock trainer and the EMT oracle."""
    return loop_config


@pytest.fixture
def start() -> list[Atoms]:
    return start_structures()
