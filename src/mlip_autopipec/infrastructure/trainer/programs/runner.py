"""Runs the external pacemaker programs with a log file, a time limit and no orphaned processes."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO

from mlip_autopipec.errors import TrainerError
from mlip_autopipec.files import open_for_append

INSTALL_HINT = 'pip install ".[pacemaker]"'
LOG_TAIL_LINES = 40

_KILL_GRACE_S = 5.0
_POLL_S = 0.2

logger = logging.getLogger(__name__)


def resolve_executable(name_or_path: str) -> str:
    """Absolute path of a program: a path must be executable; a bare name is looked up on PATH,
    then beside this Python interpreter (where pip puts the scripts of an unactivated venv)."""
    if os.sep in name_or_path or (os.altsep is not None and os.altsep in name_or_path):
        path = Path(name_or_path).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.absolute())
        problem = f"'{name_or_path}' does not exist or is not an executable file"
    else:
        found = shutil.which(name_or_path) or shutil.which(
            name_or_path, path=str(Path(sys.executable).parent)
        )
        if found is not None:
            return str(Path(found).absolute())
        problem = f"'{name_or_path}' is not installed (not found on PATH)"
    raise TrainerError(
        f"{problem}. The pacemaker programs are installed with {INSTALL_HINT} "
        "(from the mlip-autopipec source directory); if the program has another name or "
        "location, set it in the configuration under trainer.executables."
    )


def run_program(
    command: Sequence[str],
    *,
    workdir: Path,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    time_limit_s: float | None = None,
    on_line: Callable[[str], None] | None = None,
) -> None:
    """Runs ``command`` in ``workdir``, appending its output to ``log_path``; raises TrainerError.

    The program runs in its own process group, which is always stopped completely when this
    function leaves: on success (leftover background processes), on a failure, when the time
    limit is exceeded, and when our own process is interrupted (Ctrl-C or SIGTERM), so that no
    orphaned processes survive. If our process is killed outright (SIGKILL, the OOM killer),
    the kernel kills the program too (Linux: ``PR_SET_PDEATHSIG``). Output lines also go to
    ``on_line`` and to DEBUG logging.
    """
    if not command:
        raise TrainerError("no program to run: the command is empty")
    argv = [resolve_executable(command[0]), *command[1:]]
    name = Path(command[0]).name
    if time_limit_s is not None and time_limit_s <= 0:
        raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
    if not workdir.is_dir():
        raise TrainerError(
            f"cannot run {name}: the run directory does not exist",
            command=argv,
            workdir=workdir,
        )
    full_env = dict(os.environ)
    # pacemaker is a Python program: unbuffered output reaches the log as it is printed.
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    full_env.update(env or {})

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open_for_append(log_path) as log, _sigterm_raises_system_exit():
        started_at = datetime.now().isoformat(timespec="seconds")
        log.write(f"=== {started_at} running in {workdir}: {shlex.join(argv)}\n")
        log.flush()
        logger.debug("running %s in %s (log: %s)", name, workdir, log_path)
        output = _Output(name, log, on_line)
        lines: queue.Queue[str | None] = queue.Queue()
        started = time.monotonic()
        deadline = None if time_limit_s is None else started + time_limit_s
        finished = False
        try:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            log.write(f"=== could not start {name}: {exc}\n")
            raise TrainerError(
                f"could not start {name}: {exc}", command=argv, workdir=workdir, log_path=log_path
            ) from exc

        reader: threading.Thread | None = None
        # From here on an interruption must stop the process group: the try starts at once.
        try:
            assert proc.stdout is not None
            reader = threading.Thread(
                target=_read_lines, args=(proc.stdout, lines), name=f"{name}-output", daemon=True
            )
            reader.start()
            timed_out = _follow(proc, lines, deadline, output)
            finished = True
        finally:
            _stop_group(proc)
            if reader is not None and proc.stdout is not None:
                _drain(reader, proc.stdout, lines, output)
            if not finished:
                log.write(f"=== interrupted after {time.monotonic() - started:.1f} s\n")
                logger.info("%s stopped because run_program was interrupted", name)

        elapsed = time.monotonic() - started
        exit_code = proc.returncode
        if timed_out:
            log.write(f"=== time limit of {time_limit_s:g} s exceeded, {name} stopped\n")
        else:
            log.write(f"=== exit code {exit_code} after {elapsed:.1f} s\n")

    if timed_out:
        raise TrainerError(
            f"{name} exceeded the time limit of {time_limit_s:g} s and was stopped",
            command=argv,
            exit_code=exit_code,
            workdir=workdir,
            log_path=log_path,
            log_tail=output.tail,
        )
    if exit_code != 0:
        if exit_code < 0:
            how = f"was killed by signal {_signal_name(-exit_code)}"
        else:
            how = f"failed with exit code {exit_code}"
        raise TrainerError(
            f"{name} {how}",
            command=argv,
            exit_code=exit_code,
            workdir=workdir,
            log_path=log_path,
            log_tail=output.tail,
        )
    logger.debug("%s finished in %.1f s", name, elapsed)


#: prctl option: the signal the kernel sends a process when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """Popen's ``preexec_fn`` that makes the kernel SIGKILL the child when we die, however we
    die (kill -9, OOM killer, a lost session); None where prctl is unavailable (not Linux).

    libc is looked up here, in the parent: the child only makes the system call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    kill = int(signal.SIGKILL)

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, kill, 0, 0, 0)
        if os.getppid() != parent:  # we died before the call took effect
            os.kill(os.getpid(), kill)

    return set_parent_death_signal


class _Output:
    """Sends each output line to the log file, DEBUG logging, the error tail and on_line."""

    def __init__(self, name: str, log: IO[str], on_line: Callable[[str], None] | None):
        self.name = name
        self.log = log
        self.on_line = on_line
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

    def add(self, raw: str, *, notify: bool = True) -> None:
        line = raw.rstrip("\n")
        self.log.write(line + "\n")
        self.log.flush()
        logger.debug("%s | %s", self.name, line)
        self.tail.append(line)
        if notify and self.on_line is not None:
            self.on_line(line)


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Reader thread: moves lines from the pipe to the queue, then None at end of output."""
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):
        pass  # pipe closed under us
    finally:
        lines.put(None)


def _follow(
    proc: subprocess.Popen[str],
    lines: queue.Queue[str | None],
    deadline: float | None,
    output: _Output,
) -> bool:
    """Passes on output until the program exits; True if the deadline came first."""
    while True:
        try:
            line = lines.get(timeout=_POLL_S)
        except queue.Empty:
            if deadline is not None and time.monotonic() >= deadline:
                return True
            continue
        if line is None:
            break
        output.add(line)
    while not _has_exited(proc.pid):
        if deadline is not None and time.monotonic() >= deadline:
            return True
        time.sleep(0.05)
    return False


def _drain(
    reader: threading.Thread,
    stream: IO[str],
    lines: queue.Queue[str | None],
    output: _Output,
) -> None:
    """Logs what the program printed before it was stopped, once its output pipe has closed."""
    reader.join(timeout=2.0)
    while True:
        try:
            line = lines.get_nowait()
        except queue.Empty:
            break
        if line is not None:
            output.add(line, notify=False)
    # A process that left our group may still hold the pipe; then leave it to the reader thread.
    if not reader.is_alive():
        stream.close()


def _has_exited(pid: int) -> bool:
    """True once the process has exited; it is not reaped, so its group id cannot be reused yet."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """Stops the program's whole process group (SIGTERM, SIGKILL after a grace period), reaps it."""
    try:
        if not _has_exited(proc.pid):
            _signal_group(proc.pid, signal.SIGTERM)
            grace_end = time.monotonic() + _KILL_GRACE_S
            while not _has_exited(proc.pid) and time.monotonic() < grace_end:
                time.sleep(0.05)
    finally:
        # Reached also on a second Ctrl-C during the grace period. SIGKILL ends what ignored
        # SIGTERM and the background processes that outlived the program.
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
        os.killpg(pgid, signum)


@contextlib.contextmanager
def _sigterm_raises_system_exit() -> Iterator[None]:
    """Makes SIGTERM raise SystemExit(143) meanwhile, so that the program is stopped on the way out.

    Only in the main thread (the only one where handlers can be set) and only if SIGTERM has its
    default action: a handler set by the caller, or an ignored SIGTERM, is left alone.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def raise_system_exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, raise_system_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
