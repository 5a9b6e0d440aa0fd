"""What a batch job of the oracle runs: `python -m mlip_autopipec.oracle chunk.json`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ase.build import bulk

from mlip_autopipec.config.oracle import OracleConfig
from mlip_autopipec.domain_models.structure_hash import structure_hash
from mlip_autopipec.oracle.cache import LabelCache, StructurePayload
from mlip_autopipec.oracle.chunk import Chunk
from mlip_autopipec.oracle.emt import label_with_emt

FAKE = Path(__file__).with_name("fake_calculators.py")


def test_the_module_labels_a_chunk_into_the_cache(tmp_path: Path) -> None:
    structures = [bulk("Cu", "fcc", a=3.6, cubic=True), bulk("Cu", "fcc", a=3.6).repeat(2)]
    structures[0].rattle(0.1, seed=1)
    config = OracleConfig(
        calculator=f"{FAKE}:FlakyEMT",
        parameters={"count_file": str(tmp_path / "calls"), "raise_for": [8]},
    )
    payloads = [StructurePayload.of(a, structure_hash(a)) for a in structures]
    chunk = Chunk(config=config, cache_dir=tmp_path / "cache", structures=payloads)
    path = chunk.save(tmp_path / "chunk.json")

    done = subprocess.run(
        [sys.executable, "-m", "mlip_autopipec.oracle", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )

    assert done.returncode == 0, done.stderr
    assert "done: 1 labelled, 1 failed" in done.stdout
    cache = LabelCache(tmp_path / "cache", config.identity())
    labelled = cache.get(payloads[0].hash)
    assert labelled is not None and labelled.status == "ok"
    # Positions travel losslessly: the job's labels are those of the structure itself.
    assert labelled.energy == label_with_emt(structures[:1])[0].energy
    failed = cache.get(payloads[1].hash)
    assert failed is not None and failed.status == "failed"
    assert failed.reason is not None and "SCF not converged" in failed.reason


def test_a_missing_chunk_file_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlip_autopipec.oracle", str(tmp_path / "nothing.json")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot label {tmp_path / 'nothing.json'}")
    assert "Traceback" not in done.stderr
