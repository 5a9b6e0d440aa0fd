"""Labelling with any ASE calculator: failures recorded and skipped, the limit, cache, workers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from mlip_autopipec.config.execution import SlurmExecution
from mlip_autopipec.config.oracle import OracleConfig
from mlip_autopipec.domain_models.structure_hash import structure_hash
from mlip_autopipec.errors import OracleError
from mlip_autopipec.oracle.cache import LabelCache
from mlip_autopipec.oracle.labelling import label_structures

from ..conftest import kill_9_once, label_in_a_child, rattled_copper
from .fake_calculators import calls

FAKE = Path(__file__).with_name("fake_calculators.py")
#: The labelling function ``label_in_a_child`` calls.
LABEL_STRUCTURES = "mlip_autopipec.oracle.labelling:label_structures"


def _structures() -> list[Atoms]:
    """Rattled Cu cells of 4 atoms (three), 2, 3 and 5 atoms: the fake fails by atom count."""
    structures = rattled_copper(3)
    for repeat in (2, 3, 5):
        atoms = bulk("Cu", "fcc", a=3.6).repeat((repeat, 1, 1))
        atoms.rattle(0.05, seed=repeat)
        atoms.info["name"] = f"chain_{repeat}"
        structures.append(atoms)
    return structures


def _config(count_file: Path, **settings: Any) -> OracleConfig:
    parameters = {"count_file": str(count_file), **settings.pop("parameters", {})}
    return OracleConfig(calculator=f"{FAKE}:FlakyEMT", parameters=parameters, workers=1, **settings)


def _emt(atoms: Atoms) -> tuple[float, np.ndarray]:
    atoms = atoms.copy()
    atoms.calc = EMT()
    return atoms.get_potential_energy(), atoms.get_forces()


def test_failures_are_recorded_with_their_reason_and_skipped(tmp_path: Path) -> None:
    structures = _structures()
    config = _config(
        tmp_path / "calls",
        parameters={"raise_for": [2], "nan_for": [3], "inf_forces_for": [5]},
        max_failure_fraction=0.5,
    )
    seen: list[tuple[int, int]] = []

    result = label_structures(
        structures, config, tmp_path / "cache", progress=lambda *a: seen.append(a)
    )

    assert result.indices == [0, 1, 2]
    assert [f.index for f in result.failures] == [3, 4, 5]
    reasons = [f.reason for f in result.failures]
    assert reasons[0].startswith("RuntimeError: SCF not converged after 100 cycles")
    assert reasons[1] == "the energy is not finite (nan)"
    assert reasons[2] == "the forces are not finite (atoms [0])"
    assert [f.hash for f in result.failures] == [structure_hash(a) for a in structures[3:]]
    assert result.n_calls == 6 and result.n_cached == 0
    for structure, atoms in zip(result.dataset, structures[:3], strict=True):
        energy, forces = _emt(atoms)
        assert structure.energy == energy
        np.testing.assert_array_equal(structure.forces, forces)
        np.testing.assert_array_equal(structure.atoms.positions, atoms.positions)
    assert seen[0] == (0, 6) and seen[-1] == (6, 6)


def test_too_many_failures_stop_labelling_with_an_error_naming_them(tmp_path: Path) -> None:
    structures = _structures()
    config = _config(tmp_path / "calls", parameters={"raise_for": [2, 3]}, max_failure_fraction=0.2)
    with pytest.raises(OracleError) as caught:
        label_structures(structures, config, tmp_path / "cache")
    message = str(caught.value)
    assert "failed on 2 of 6 structures" in message
    assert "oracle.max_failure_fraction = 0.2" in message
    assert "structure 3: RuntimeError: SCF not converged" in message
    assert caught.value.failures[0][0] == 3
    # Labelling stopped at the limit: the fifth structure's successor (5 atoms) was not paid for.
    assert calls(tmp_path / "calls") == [4, 4, 4, 2, 3]
    # What was computed stays cached.
    cache = LabelCache(tmp_path / "cache", config.identity())
    assert cache.get(structure_hash(structures[0])) is not None


def test_the_cache_avoids_repeated_calls_and_keeps_failures(tmp_path: Path) -> None:
    structures = _structures()
    count_file = tmp_path / "calls"
    config = _config(count_file, parameters={"raise_for": [2]}, max_failure_fraction=0.5)
    first = label_structures(structures, config, tmp_path / "cache")
    assert len(calls(count_file)) == 6

    again = label_structures(structures[::-1], config, tmp_path / "cache")

    assert len(calls(count_file)) == 6
    assert again.n_calls == 0 and again.n_cached == 6
    assert [f.index for f in again.failures] == [2] and again.failures[0].cached
    assert [s.energy for s in again.dataset] == [s.energy for s in first.dataset][::-1]
    # Asked to, the failure (and only it) is tried again.
    retried = label_structures(structures, config, tmp_path / "cache", retry_failures=True)
    assert calls(count_file)[6:] == [2] and retried.n_calls == 1


def test_a_cache_entry_cut_short_is_computed_again(tmp_path: Path) -> None:
    structures = _structures()[:3]
    count_file = tmp_path / "calls"
    config = _config(count_file)
    first = label_structures(structures, config, tmp_path / "cache")
    entry = LabelCache(tmp_path / "cache", config.identity()).path(structure_hash(structures[1]))
    text = entry.read_text()
    entry.write_text(text[: len(text) // 2])  # as a crash of the machine may leave it
    (entry.parent / f".{entry.name}.1234abcd.tmp").write_text(text[:10])  # an unfinished write

    again = label_structures(structures, config, tmp_path / "cache")

    assert again.n_calls == 1 and again.n_cached == 2
    assert len(calls(count_file)) == 4
    assert again.dataset[1].energy == first.dataset[1].energy


def test_the_same_structure_twice_is_computed_once(tmp_path: Path) -> None:
    atoms = _structures()[0]
    copy = atoms.copy()
    copy.info["name"] = "a copy"
    result = label_structures([atoms, copy], _config(tmp_path / "calls"), tmp_path / "cache")
    assert result.n_calls == 1 and len(result.dataset) == 2
    assert result.dataset[1].name == "a copy"


def test_another_oracle_does_not_reuse_the_labels(tmp_path: Path) -> None:
    structures = _structures()[:2]
    label_structures(structures, _config(tmp_path / "calls"), tmp_path / "cache")
    other = _config(tmp_path / "calls", parameters={"nan_for": [7]})
    assert label_structures(structures, other, tmp_path / "cache").n_calls == 2


def test_parallel_workers_give_the_labels_of_a_single_one(tmp_path: Path) -> None:
    structures = _structures()
    count_file = tmp_path / "calls"
    serial = label_structures(structures, _config(count_file), tmp_path / "serial")
    parallel = label_structures(
        structures, _config(count_file).model_copy(update={"workers": 2}), tmp_path / "parallel"
    )
    assert len({line.split()[1] for line in count_file.read_text().splitlines()[6:]}) == 2
    for one, other in zip(serial.dataset, parallel.dataset, strict=True):
        assert one.energy == other.energy
        np.testing.assert_array_equal(one.forces, other.forces)


def test_a_broken_structure_is_not_sent_to_the_oracle(tmp_path: Path) -> None:
    broken = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 0.01]])
    config = _config(tmp_path / "calls", max_failure_fraction=0.5)
    result = label_structures([_structures()[0], broken], config, tmp_path / "cache")
    assert result.failures[0].index == 1
    assert "not labelled" in result.failures[0].reason
    assert "closer than" in result.failures[0].reason or "apart" in result.failures[0].reason
    assert calls(tmp_path / "calls") == [4]


def test_a_slow_structure_times_out(tmp_path: Path) -> None:
    config = _config(
        tmp_path / "calls",
        parameters={"sleep_for": [2], "sleep_s": 60},
        timeout_s=1.0,
        max_failure_fraction=0.5,
    )
    result = label_structures(_structures()[2:4], config, tmp_path / "cache")
    assert [f.reason for f in result.failures] == ["timed out after 1 s (oracle.timeout_s)"]
    assert len(result.dataset) == 1


def test_a_crashing_worker_fails_its_structure_without_caching_it(tmp_path: Path) -> None:
    structures = _structures()
    config = _config(tmp_path / "calls", parameters={"crash_for": [3]}, max_failure_fraction=0.5)
    result = label_structures(structures, config, tmp_path / "cache")
    assert [f.index for f in result.failures] == [4]
    assert "worker process labelling it died" in result.failures[0].reason
    assert result.indices == [0, 1, 2, 3, 5]
    cache = LabelCache(tmp_path / "cache", config.identity())
    assert cache.get(structure_hash(structures[4])) is None


def test_a_labelling_killed_midway_loses_at_most_the_structure_in_progress(
    tmp_path: Path,
) -> None:
    count_file = tmp_path / "calls"
    config = _config(count_file, parameters={"sleep_for": [4], "sleep_s": 0.5})
    (tmp_path / "config.json").write_text(config.model_dump_json())
    child = label_in_a_child(LABEL_STRUCTURES, 5, tmp_path / "config.json", tmp_path / "cache")
    too_soon = "the labelling ended before it was killed"
    kill_9_once(child, lambda: len(calls(count_file)) >= 2, too_soon)
    time.sleep(1.0)  # the orphaned worker finishes its structure, or not
    before = len(calls(count_file))

    result = label_structures(rattled_copper(5), config, tmp_path / "cache")

    assert len(result.dataset) == 5 and result.n_cached >= 1
    assert result.n_cached + result.n_calls == 5
    assert len(calls(count_file)) - before == result.n_calls
    assert len(calls(count_file)) <= 6  # at most the structure in progress paid twice


def test_batch_execution_is_not_run_here_silently(tmp_path: Path) -> None:
    config = _config(tmp_path / "calls").model_copy(
        update={"execution": SlurmExecution(time_limit="00:10:00")}
    )
    with pytest.raises(ValueError, match=r"infrastructure\.oracle_jobs\.label"):
        label_structures(_structures(), config, tmp_path / "cache")
    assert calls(tmp_path / "calls") == []
