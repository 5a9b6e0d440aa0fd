"""The loop directory's safety, the same as ``train``'s run directory (ours or empty, one lock,
nothing foreign touched): the one place the loop takes it from."""

from __future__ import annotations

from mlip_autopipec.infrastructure.rundir.claim import (
    claim_run_directory,
    is_held,
    is_ours,
    read_manifest,
)

__all__ = ["claim_run_directory", "is_held", "is_ours", "read_manifest"]
