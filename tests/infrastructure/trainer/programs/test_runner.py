"""Tests of the process runner with small fake programs written to tmp_path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlip_autopipec.errors import TrainerError
from mlip_autopipec.infrastructure.trainer.programs.runner import (
    INSTALL_HINT,
    resolve_executable,
    run_program,
)

SRC_DIR = Path(__file__).resolve().parents[4] / "src"


def write_fake(directory: Path, name: str, body: str, *, shell: bool = False) -> Path:
    """An executable script: a /bin/sh script or a Python script run by this interpreter."""
    interpreter = "/bin/sh" if shell else sys.executable
    path = directory / name
    path.write_text(f"#!{interpreter}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def is_gone(pid: int) -> bool:
    """True if the process does not exist or is a zombie (it has ended, only not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if is_gone(pid):
            return True
        time.sleep(0.05)
    return is_gone(pid)


def wait_for_file(path: Path, timeout: float = 20.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout} s")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


def test_success_logs_all_lines_and_calls_on_line_in_order(tmp_path: Path, workdir: Path) -> None:
    fake = write_fake(
        tmp_path,
        "fake_fit",
        """
        import sys
        print("out 1", flush=True)
        print("err 2", file=sys.stderr, flush=True)
        print("out 3", flush=True)
        print("err 4", file=sys.stderr, flush=True)
        """,
    )
    log_path = workdir / "log.txt"
    seen: list[str] = []

    run_program(
        [str(fake), "--flag", "a b"], workdir=workdir, log_path=log_path, on_line=seen.append
    )

    assert seen == ["out 1", "err 2", "out 3", "err 4"]
    log_lines = log_path.read_text().splitlines()
    assert "fake_fit" in log_lines[0] and "--flag" in log_lines[0] and "'a b'" in log_lines[0]
    assert log_lines[1:5] == ["out 1", "err 2", "out 3", "err 4"]


def test_log_is_appended_to(tmp_path: Path, workdir: Path) -> None:
    fake = write_fake(tmp_path, "fake", 'print("hello")\n')
    log_path = workdir / "log.txt"
    log_path.write_text("earlier run\n")

    run_program([str(fake)], workdir=workdir, log_path=log_path)

    text = log_path.read_text()
    assert text.startswith("earlier run\n")
    assert "hello" in text


def test_by_name_lookup_on_path(
    tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = write_fake(tmp_path, "fake_pacemaker", 'print("found me")\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    seen: list[str] = []

    assert resolve_executable("fake_pacemaker") == str(fake)
    run_program(["fake_pacemaker"], workdir=workdir, log_path=workdir / "log", on_line=seen.append)

    assert seen == ["found me"]


def test_by_name_lookup_beside_the_interpreter_of_an_unactivated_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    fake = write_fake(venv_bin, "fake_pace_tool", 'print("in the venv")\n')
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert resolve_executable("fake_pace_tool") == str(fake)


@pytest.mark.parametrize("how", ["name", "path", "not_executable"])
def test_missing_executable(tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    if how == "name":
        program = "pace_nonexistent_program"
    elif how == "path":
        program = str(tmp_path / "nowhere" / "pacemaker")
    else:
        plain = tmp_path / "pacemaker"
        plain.write_text("#!/bin/sh\n")
        program = str(plain)
    workdir = tmp_path / "run"
    log_path = workdir / "log.txt"

    with pytest.raises(TrainerError) as caught:
        run_program([program, "input.yaml"], workdir=workdir, log_path=log_path)

    message = str(caught.value)
    assert program in message
    assert INSTALL_HINT in message
    assert "trainer.executables" in message
    assert not workdir.exists()
    assert not log_path.exists()


def test_nonzero_exit_reports_last_40_lines(tmp_path: Path, workdir: Path) -> None:
    fake = write_fake(
        tmp_path,
        "fake_fail",
        """
        import sys
        for i in range(1, 101):
            print(f"line {i}")
        sys.exit(3)
        """,
    )
    log_path = workdir / "log.txt"

    with pytest.raises(TrainerError) as caught:
        run_program([str(fake), "x.yaml"], workdir=workdir, log_path=log_path)

    error = caught.value
    assert error.exit_code == 3
    assert error.log_path == log_path
    assert error.workdir == workdir
    assert error.command == [str(fake), "x.yaml"]
    assert error.log_tail == [f"line {i}" for i in range(61, 101)]
    message = str(error)
    assert "fake_fail" in message
    assert "line 61" in message and "line 100" in message
    assert "line 60\n" not in message
    log_lines = log_path.read_text().splitlines()
    assert all(f"line {i}" in log_lines for i in range(1, 101))


def test_crash_traceback_in_log_tail(tmp_path: Path, workdir: Path) -> None:
    fake = write_fake(
        tmp_path,
        "fake_crash",
        """
        print("starting fit", flush=True)
        raise RuntimeError("tensor shapes do not match")
        """,
    )

    with pytest.raises(TrainerError) as caught:
        run_program([str(fake)], workdir=workdir, log_path=workdir / "log.txt")

    tail = "\n".join(caught.value.log_tail)
    assert caught.value.exit_code == 1
    assert "Traceback (most recent call last)" in tail
    assert "RuntimeError: tensor shapes do not match" in tail
    assert "RuntimeError: tensor shapes do not match" in (workdir / "log.txt").read_text()


def test_time_limit_stops_the_process_group(tmp_path: Path, workdir: Path) -> None:
    fake = write_fake(
        tmp_path,
        "fake_slow",
        """
        echo "pid $$"
        sleep 60 &
        echo "child $!"
        wait
        """,
        shell=True,
    )
    seen: list[str] = []
    with pytest.raises(TrainerError) as caught:
        run_program(
            [str(fake)],
            workdir=workdir,
            log_path=workdir / "log.txt",
            time_limit_s=1,
            on_line=seen.append,
        )

    assert "time limit of 1 s" in str(caught.value)
    assert caught.value.exit_code == -signal.SIGTERM
    pids = [int(line.split()[1]) for line in seen]
    assert len(pids) == 2
    assert all(wait_gone(pid) for pid in pids)
    assert "time limit" in (workdir / "log.txt").read_text()


def test_time_limit_kills_a_program_that_ignores_sigterm(tmp_path: Path, workdir: Path) -> None:
    fake = write_fake(
        tmp_path,
        "fake_stubborn",
        """
        trap '' TERM
        echo "pid $$"
        sleep 60 &
        echo "child $!"
        wait
        sleep 60
        """,
        shell=True,
    )
    seen: list[str] = []
    with pytest.raises(TrainerError) as caught:
        run_program(
            [str(fake)],
            workdir=workdir,
            log_path=workdir / "log.txt",
            time_limit_s=1,
            on_line=seen.append,
        )

    assert "time limit" in str(caught.value)
    assert caught.value.exit_code == -signal.SIGKILL
    pids = [int(line.split()[1]) for line in seen]
    assert len(pids) == 2
    assert all(wait_gone(pid) for pid in pids)


def test_on_line_exception_stops_the_program(tmp_path: Path, workdir: Path) -> None:
    fake = write_fake(tmp_path, "fake_sleeper", 'echo "pid $$"\nexec sleep 60\n', shell=True)
    pids: list[int] = []

    def on_line(line: str) -> None:
        pids.append(int(line.split()[1]))
        raise ValueError("progress parser broke")

    with pytest.raises(ValueError, match="progress parser broke"):
        run_program([str(fake)], workdir=workdir, log_path=workdir / "log.txt", on_line=on_line)

    assert len(pids) == 1
    assert wait_gone(pids[0])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_our_process_leaves_no_child(
    tmp_path: Path, workdir: Path, signum: signal.Signals
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    fake = write_fake(
        tmp_path,
        "fake_background",
        f"""
        sleep 300 &
        echo $! > {pid_file}.tmp
        mv {pid_file}.tmp {pid_file}
        echo started
        wait
        """,
        shell=True,
    )
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(
            f"""
            import signal
            from pathlib import Path
            from mlip_autopipec.infrastructure.trainer.programs.runner import run_program

            # As in an interactive shell, even if this test runs where the signals are ignored.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

            run_program([{str(fake)!r}], workdir=Path({str(workdir)!r}),
                        log_path=Path({str(workdir / "log.txt")!r}))
            """
        )
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC_DIR), env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, str(driver)], env=env, stderr=subprocess.PIPE)
    try:
        grandchild = int(wait_for_file(pid_file))
        assert not is_gone(grandchild)

        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert wait_gone(grandchild), f"grandchild {grandchild} survived; driver stderr:\n{stderr!r}"
    if signum == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM
    else:
        assert b"KeyboardInterrupt" in stderr
    assert "interrupted" in (workdir / "log.txt").read_text()


def test_env_overrides_and_workdir(
    tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLIP_RUNNER_INHERITED", "from-parent")
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    fake = write_fake(
        tmp_path,
        "fake_env",
        """
        import os
        print(os.environ["OMP_NUM_THREADS"])
        print(os.environ["MLIP_RUNNER_INHERITED"])
        print(os.getcwd())
        """,
    )
    seen: list[str] = []

    run_program(
        [str(fake)],
        workdir=workdir,
        log_path=tmp_path / "logs" / "log.txt",
        env={"OMP_NUM_THREADS": "3"},
        on_line=seen.append,
    )

    assert seen[:2] == ["3", "from-parent"]
    assert Path(seen[2]).resolve() == workdir.resolve()
    assert os.environ["OMP_NUM_THREADS"] == "64"
