"""Writing files so that a reader never sees a half-written one, and never through a symlink.

Every file we write or append to goes through these helpers: a target that is a symbolic
link is refused (OutputError naming it), so that a link planted in a run directory cannot
make us write outside it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


class LinkRefused(OSError):
    """A file we were to write is a symbolic link (the CLI: exit 2). ``filename`` is it."""


def refuse_symlink(path: Path) -> None:
    """LinkRefused when ``path`` is a symbolic link: we write only regular files we created."""
    if Path(path).is_symlink():
        raise LinkRefused(
            errno.ELOOP,
            f"{path} is a symbolic link (to {os.readlink(path)}): mlip-autopipec writes only "
            "regular files it created, never through a link; remove the link",
            str(path),
        )


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
    """A temporary path beside ``path`` that replaces it on success and is removed on error.
    LinkRefused, before and after the temporary is written, when ``path`` is a symlink."""
    path = Path(path)
    refuse_symlink(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with naming(path, temporary):
            yield temporary
            refuse_symlink(path)  # os.replace would replace a link planted meanwhile, not follow it
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    """SHA-256 of the bytes of ``path`` (read in blocks: any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (never through a symlink)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def open_for_append(path: Path) -> IO[str]:
    """``path`` opened to append text (UTF-8), created if missing; OutputError when it is a
    symbolic link (LinkRefused; ``O_NOFOLLOW``: the check and the open are one step)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
    try:
        descriptor = os.open(path, flags, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            refuse_symlink(path)
        raise
    return os.fdopen(descriptor, "a", encoding="utf-8")
