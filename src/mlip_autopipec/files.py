"""Writing files so that a reader never sees a half-written one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def naming(path: Path, *aliases: Path) -> Iterator[None]:
    """An OSError that names no file (a full disk: ``write`` raises ENOSPC without a name), or
    names one of ``aliases`` (a temporary file), is raised again naming ``path``."""
    try:
        yield
    except OSError as error:
        if error.filename is not None and error.filename not in {str(a) for a in aliases}:
            raise
        raise OSError(error.errno, f"cannot write: {error.strerror}", str(path)) from error


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it on success and is removed on error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with naming(path, temporary):
            yield temporary
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)
