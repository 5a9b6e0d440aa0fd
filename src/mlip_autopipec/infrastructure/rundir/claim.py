"""The run directory: ours or empty, one run at a time, and a manifest of what each run wrote.

A run claims its directory with :func:`claim_run_directory` before it writes anything:

- the directory must be new, empty, or marked by an earlier run of ours (its manifest
  ``.mlip-autopipec-run.json``); anything else is refused, and nothing is written;
- an OS lock (``fcntl.flock`` on ``.mlip-autopipec.lock``) keeps a second run out while the
  first lives; the kernel releases it when the holder dies, even on ``kill -9``;
- the manifest says ``running`` (with PID, host and start time) while the run lives, and
  ``finished``, ``failed`` or ``interrupted`` when it ends, with the files it left. A manifest
  still saying ``running`` when the lock is free means that run was killed;
- ``submitted``: a batch job submitted from the directory may still write there (the lock is
  released when the submitting process exits); only a claim with ``resume`` (``wait``, which
  follows the job and finishes the run) takes such a directory;
- files of an earlier run are replaced only if that run wrote them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from mlip_autopipec.errors import OutputError
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.rundir.files import (
    BATCH_JOB_JSON,
    FINISHED_RECORD,
    INTERIM_POTENTIAL,
    JOB_RESULT_JSON,
    LOCK_FILE,
    MANIFEST,
)

log = logging.getLogger(__name__)

_OWN_FILES = (MANIFEST, LOCK_FILE)
#: The status of a run handed over to a batch job (:meth:`RunDirectory.hand_over`).
SUBMITTED = "submitted"


def is_ours(directory: Path) -> bool:
    """Whether ``directory`` was made by a run of mlip-autopipec (it holds our manifest)."""
    return (Path(directory) / MANIFEST).is_file()


def warn_if_resumable(run_dir: Path) -> None:
    """Before a new fit replaces the interim potential of an interrupted one: say how to keep it."""
    path = Path(run_dir)
    refused = (path / FINISHED_RECORD).exists() or is_held(path)  # the claim says so instead
    if (path / INTERIM_POTENTIAL).is_file() and is_ours(path) and not refused:
        log.warning(
            "%s holds the interim potential of an interrupted fit: this new fit starts over and "
            "replaces it ('mlip-autopipec train --resume %s' would have continued it)",
            path,
            path,
        )


def is_held(directory: Path) -> bool:
    """Whether a live process holds the directory's lock (a run there now). Only looks: a
    shared lock, taken and released at once, in a file that must already exist."""
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


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of ``directory``'s last run, or None when there is none or it is unreadable."""
    try:
        data = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def refuse_to_overwrite(path: Path, *, overwrite: bool, what: str = "output file") -> None:
    """Raise OutputError if ``path`` exists (and ``overwrite`` is false) or is a directory."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory", path=path)
    if path.exists() and not overwrite:
        raise OutputError(
            f"{what} {path} already exists: give another path, or --overwrite to replace it",
            path=path,
        )


class RunDirectory:
    """A claimed run directory, locked for this process until :meth:`release` (or ``with``).

    ``previous`` is the manifest of the run before this one in the same directory, if any.
    """

    def __init__(self, path: Path, lock_fd: int, previous: dict[str, Any] | None) -> None:
        self.path = path
        self.previous = previous
        self._lock_fd: int | None = lock_fd
        self._handed_over = False
        self._started = time.time()
        self._manifest: dict[str, Any] = {
            "tool": "mlip-autopipec",
            "status": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": _now(),
            "started_at_epoch": self._started,
            "command": list(sys.argv),
            "files": sorted(_previous_files(previous)),
        }

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handed_over:  # the manifest says so already; the lock is released
            return
        if kind is None:
            status = "finished"
        elif issubclass(kind, KeyboardInterrupt | SystemExit):
            status = "interrupted"
        else:
            status = "failed"
        try:
            self.finish(status)
        finally:
            self.release()

    def finish(self, status: str) -> None:
        """Record how the run ended and every file the directory now holds (they are ours)."""
        files = {
            str(p.relative_to(self.path))
            for p in self.path.rglob("*")
            if p.is_file() and p.name not in _OWN_FILES
        }
        self._manifest |= {"status": status, "finished_at": _now(), "files": sorted(files)}
        self._write_manifest()

    def hand_over(self) -> None:
        """Leave the directory to a batch job submitted from it: the manifest says
        ``submitted`` (not finished) and the lock is released; a claim with ``resume`` takes
        it back."""
        self.finish(SUBMITTED)
        self._handed_over = True
        self.release()

    def release(self) -> None:
        """Release the lock (the kernel does it anyway when the process ends)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _write_manifest(self) -> None:
        text = json.dumps(self._manifest, indent=1) + "\n"
        try:
            write_text_atomic(self.path / MANIFEST, text)
        except OSError:  # a full disk has no room for a second copy: the old one's, compact
            if not (self.path / MANIFEST).is_file():
                raise
            with open(self.path / MANIFEST, "r+", encoding="utf-8") as stream:
                stream.write(json.dumps(self._manifest, separators=(",", ":")))
                stream.truncate()


def claim_run_directory(
    directory: Path, *, replaces: Iterable[str] = (), resume: bool = False
) -> RunDirectory:
    """Create or take over ``directory`` for one run, locked; raise OutputError (nothing written)
    when it holds files that are not ours, a finished run, or another run's lock.

    ``replaces`` are the names of result files a rerun must not find stale: those an earlier
    run of ours left are removed; one we did not write is an error. A directory handed over to
    a batch job (status ``submitted``) is taken only with ``resume``: to finish that run.
    """
    path = Path(directory).absolute()
    _check_claimable(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise OutputError(
            f"cannot write the run directory {path}: {error.strerror or error}", path=path
        ) from error
    try:
        _lock(lock_fd, path)
        # Under the lock: what the first look saw may have changed.
        _check_claimable(path)
        previous = read_manifest(path)
        if previous is not None and previous.get("status") == SUBMITTED and not resume:
            raise OutputError(
                f"{path} holds a batch job submitted from it (at {previous.get('finished_at')}) "
                f"that may still write there: 'mlip-autopipec wait {path}' follows it to its end "
                "(or says how it ended); choose another output directory meanwhile",
                path=path,
            )
        if previous is not None and previous.get("status") == "running" and resume:
            log.info("the process that followed the batch job in %s ended early", path)
            previous = previous | {"status": "killed"}
        elif previous is not None and previous.get("status") == "running":
            log.warning(
                "the previous run in %s (PID %s on %s, started %s) was killed before it "
                "finished; its files are replaced",
                path,
                previous.get("pid"),
                previous.get("host"),
                previous.get("started_at"),
            )
            previous = previous | {"status": "killed"}
        _remove_stale(path, replaces, previous)
        run = RunDirectory(path, lock_fd, previous)
        run._write_manifest()
    except BaseException:
        os.close(lock_fd)
        raise
    return run


def _check_claimable(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise OutputError(f"the run directory {path} is a file, not a directory", path=path)
    if not path.exists():
        return
    if (path / FINISHED_RECORD).exists():
        raise OutputError(
            f"{path} already holds a trained potential ({FINISHED_RECORD}); choose another "
            "output directory",
            path=path,
        )
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError as error:
        raise OutputError(f"cannot read the run directory {path}: {error}", path=path) from error
    if names and not any(name in names for name in _OWN_FILES):
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise OutputError(
            f"{path} is not empty and was not made by mlip-autopipec (it holds {shown}): "
            "nothing was written; choose a new or empty directory",
            path=path,
        )
    links = [name for name in names if (path / name).is_symlink()]
    if links:
        # We never make a link: one here was planted, and writing through it would write
        # outside the run directory (files.refuse_symlink guards every write as well).
        shown = ", ".join(f"{name} -> {os.readlink(path / name)}" for name in links[:5])
        raise OutputError(
            f"{path} holds symbolic links ({shown}) that mlip-autopipec did not make: it "
            "writes only regular files it created, never through a link; nothing was written",
            path=path / links[0],
        )


def _lock(lock_fd: int, path: Path) -> None:
    """Take the directory's lock without waiting, then write who holds it into the lock file."""
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(lock_fd)
        raise OutputError(
            f"{path} is in use by another run (PID {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, started {holder.get('started_at', '?')}); wait for it "
            "to end or choose another output directory",
            path=path,
        ) from None
    holder_text = json.dumps(
        {"pid": os.getpid(), "host": socket.gethostname(), "started_at": _now()}
    ).encode()
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, holder_text, 0)


def _read_holder(lock_fd: int) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(os.pread(lock_fd, 4096, 0).decode() or "{}")
        if isinstance(data, dict):
            return data
    return {}


def _previous_files(previous: dict[str, Any] | None) -> set[str]:
    if previous is None:
        return set()
    files = previous.get("files", [])
    return {str(name) for name in files} if isinstance(files, list) else set()


def _written_by_previous_run(path: Path, name: str, previous: dict[str, Any] | None) -> bool:
    """Listed in the previous manifest, or changed since that run started where it could not
    list it: a run that is killed cannot list what it wrote, and a batch job that was cancelled
    or ended by its scheduler writes its result (``job_result.json``) as it dies, which may be
    after the run that followed it has listed the files."""
    if previous is None:
        return False
    previous_files = _previous_files(previous)
    if name in previous_files:
        return True
    started = previous.get("started_at_epoch")
    killed = previous.get("status") == "killed"
    dying_job = name == JOB_RESULT_JSON and BATCH_JOB_JSON in previous_files
    if not (killed or dying_job) or not isinstance(started, int | float):
        return False
    return (path / name).stat().st_mtime >= started


def _remove_stale(path: Path, names: Iterable[str], previous: dict[str, Any] | None) -> None:
    present = [name for name in names if (path / name).exists()]
    foreign = [name for name in present if not _written_by_previous_run(path, name, previous)]
    if foreign:
        raise OutputError(
            f"{path} holds {', '.join(foreign)}, which mlip-autopipec did not write: move "
            "it away or choose another output directory",
            path=path,
        )
    for name in present:
        (path / name).unlink()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
