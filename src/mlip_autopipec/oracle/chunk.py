"""A chunk of structures labelled by one batch job: its file and the job's side of it."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.config.oracle import OracleConfig
from mlip_autopipec.domain_models.structure_hash import structure_hash
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.oracle.cache import LabelCache, StructurePayload
from mlip_autopipec.oracle.calculation import label_one

log = logging.getLogger(__name__)


class Chunk(BaseModel):
    """What a batch job labels: the oracle, the cache it writes into, the structures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: OracleConfig = Field(description="the oracle")
    cache_dir: Path = Field(description="the label cache (absolute, on a shared filesystem)")
    structures: list[StructurePayload] = Field(description="the structures, lossless")

    def save(self, path: Path) -> Path:
        write_text_atomic(path, self.model_dump_json() + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Chunk:
        return cls.model_validate_json(path.read_text())


def label_chunk(path: Path) -> tuple[int, int]:
    """Label the structures of the chunk file ``path`` into its cache, one after another (the
    job's cores are the calculator's); returns (labelled, failed)."""
    chunk = Chunk.load(path)
    cache = LabelCache(chunk.cache_dir, chunk.config.identity())
    labelled = failed = 0
    for number, payload in enumerate(chunk.structures, start=1):
        if structure_hash(payload.atoms()) != payload.hash:
            raise ValueError(f"structure {number} of {path} does not match its hash")
        entry = label_one(chunk.config, payload, cache)
        if entry.status == "ok":
            labelled += 1
        else:
            failed += 1
        print(
            f"{number}/{len(chunk.structures)} {payload.hash[:12]}: {entry.status} "
            f"({entry.seconds:.1f} s){': ' + entry.reason if entry.reason else ''}",
            flush=True,
        )
    return labelled, failed
