"""The error types of mlip-autopipec, each carrying what a user needs to fix the problem."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class MlipAutopipecError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(MlipAutopipecError):
    """A configuration value is invalid; ``problems`` lists ``(field path, reason)`` pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]], source: str | Path | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source is not None else ""
        lines = [f"invalid configuration{where}:"]
        lines += [f"  {field}: {reason}" for field, reason in self.problems]
        super().__init__("\n".join(lines))


class DatasetValidationError(MlipAutopipecError):
    """A structure of a dataset is unusable; the message names it by index, name and file."""

    def __init__(
        self,
        reason: str,
        *,
        index: int | None = None,
        name: str | None = None,
        source: str | Path | None = None,
    ):
        self.reason = reason
        self.index = index
        self.name = name
        self.source = source
        parts = []
        if index is not None:
            parts.append(f"structure {index}")
        if name:
            parts.append(f"'{name}'")
        if source is not None:
            parts.append(f"in {source}")
        where = " ".join(parts)
        super().__init__(f"{where}: {reason}" if where else reason)


class TrainerError(MlipAutopipecError):
    """Training failed: carries command, exit code, run directory, log file and the log's end."""

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] | None = None,
        exit_code: int | None = None,
        workdir: Path | None = None,
        log_path: Path | None = None,
        log_tail: Sequence[str] = (),
    ):
        self.message = message
        self.command = list(command) if command is not None else None
        self.exit_code = exit_code
        self.workdir = workdir
        self.log_path = log_path
        self.log_tail = list(log_tail)
        lines = [message]
        if self.command is not None:
            lines.append(f"  command: {' '.join(self.command)}")
        if exit_code is not None:
            lines.append(f"  exit code: {exit_code}")
        if workdir is not None:
            lines.append(f"  run directory: {workdir}")
        if log_path is not None:
            lines.append(f"  log: {log_path}")
        if self.log_tail:
            lines.append(f"  last {len(self.log_tail)} log lines:")
            lines += [f"    | {line}" for line in self.log_tail]
        super().__init__("\n".join(lines))


class SchedulerUnreachableError(TrainerError):
    """The cluster's scheduler did not answer for a while: the job's state is unknown (it may
    still run), and nothing was recorded of it."""


class OracleError(MlipAutopipecError):
    """Labelling failed as a whole: too many structures failed, or none could be labelled.
    ``failures`` lists ``(index, reason)`` of the structures that failed; ``cache_dir`` holds
    the labels that were computed (they are kept and reused)."""

    def __init__(
        self,
        message: str,
        *,
        failures: Sequence[tuple[int, str]] = (),
        cache_dir: Path | None = None,
    ):
        self.message = message
        self.failures = list(failures)
        self.cache_dir = cache_dir
        lines = [message]
        shown = self.failures[:10]
        lines += [f"  structure {index}: {reason}" for index, reason in shown]
        if len(self.failures) > len(shown):
            lines.append(f"  ... and {len(self.failures) - len(shown)} more")
        if cache_dir is not None:
            lines.append(f"  label cache: {cache_dir}")
        super().__init__("\n".join(lines))


class OutputError(MlipAutopipecError):
    """An output path cannot be written: it holds files mlip-autopipec did not write, another
    run holds its lock, or the file exists and overwriting was not asked for. ``path`` is it."""

    def __init__(self, message: str, *, path: Path | None = None):
        self.path = path
        super().__init__(message)


class NotAFinishedRun(OutputError):
    """A directory (or file) that holds no readable finished run: no ``potential.json``, or one
    that cannot be read. ``path`` is it."""


class FailedChecksError(TrainerError):
    """A fitted potential failed the safety gate; it stays in ``workdir``, marked as failed."""

    def __init__(self, message: str, *, failures: Sequence[str], workdir: Path):
        self.failures = list(failures)
        super().__init__(message, workdir=workdir)
