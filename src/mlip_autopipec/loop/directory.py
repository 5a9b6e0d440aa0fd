"""The loop directory's safety, the same as ``train``'s run directory (ours or empty, one lock,
nothing foreign touched): the one place the loop takes it from."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from mlip_autopipec.infrastructure.trainer.run_directory import (
    LOCK_FILE,
    claim_run_directory,
    is_ours,
    read_manifest,
)

__all__ = ["claim_run_directory", "is_held", "is_ours", "read_manifest"]


def is_held(directory: Path) -> bool:
    """Whether a live process holds the directory's lock (a loop running there now). Only
    looks: a shared lock, taken and released at once, in a file that must already exist."""
    try:
        descriptor = os.open(Path(directory) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
    return False
