"""A batch job as data: the job script and the submit command, with no value read as shell text.

For SLURM every option goes to ``sbatch`` as an argument (an argument list: no character is
interpreted) and the script holds only ``shlex``-quoted words, so that a run directory named
``my run`` or ``run_$(id)`` reaches the program unchanged, as it does locally. The user's
``setup`` lines are the one shell text of a job: they are sourced from their own file.

psij writes the PBS and LSF scripts from templates that cannot quote every character; for those
backends a value that would need quoting is refused (``check_plain``) before anything is submitted.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from mlip_autopipec.config.execution import BatchExecution
from mlip_autopipec.errors import ConfigurationError

#: Characters a job name keeps; any other becomes "_" (the name is only shown in the queue).
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
#: The variable SLURM sets to the job's id, used in the exit code file's name.
_SLURM_JOB_ID = '"$SLURM_JOB_ID"'


@dataclass(frozen=True)
class JobRequest:
    """One program with its arguments, run in ``directory`` on a compute node."""

    executable: str
    arguments: list[str]
    directory: Path
    output: Path = field(metadata={"doc": "file for the program's stdout and stderr"})
    name: str = "mlip-autopipec"
    environment: dict[str, str] = field(default_factory=dict)
    setup_script: Path | None = None


def job_name(name: str) -> str:
    """``name`` with every character outside letters, digits and ``._+-`` replaced by ``_``."""
    return _NAME_UNSAFE.sub("_", name)[:128] or "mlip-autopipec"


def exit_code_file(files_dir: Path, job_id: str) -> Path:
    """Where the job script records its program's exit code (psij's place for it, too)."""
    return files_dir / f"{job_id}.ec"


def slurm_script(request: JobRequest, files_dir: Path) -> str:
    """The SLURM job script: environment, setup lines (sourced), the program, its exit code.

    Every value is one shell word (``shlex.quote``); the exit code goes to
    ``files_dir/<job id>.ec`` and is also the script's own exit code.
    """
    q = shlex.quote
    ec_file = f"{q(str(files_dir))}/{_SLURM_JOB_ID}.ec"
    output = q(str(request.output))
    lines = [
        "#!/bin/bash",
        "# Written by mlip-autopipec: every value is quoted; sbatch got the options as arguments.",
        *(f"export {_variable(name)}={q(value)}" for name, value in request.environment.items()),
        f"cd -- {q(str(request.directory))} || exit 1",
    ]
    if request.setup_script is not None:
        lines += [
            "# execution.setup: the user's shell lines, the only shell text of the job",
            f". {q(str(request.setup_script))} >> {output} 2>&1 || {{",
            "    code=$?",
            f'    echo "execution.setup failed with exit code $code" >> {output}',
            f'    echo "$code" > {ec_file}',
            '    exit "$code"',
            "}",
        ]
    lines += [
        f"{shlex.join([request.executable, *request.arguments])} >> {output} 2>&1",
        "code=$?",
        f'echo "$code" > {ec_file}',
        'exit "$code"',
    ]
    return "\n".join(lines) + "\n"


def sbatch_command(execution: BatchExecution, request: JobRequest, script: Path) -> list[str]:
    """``sbatch`` with every option as an argument; ``--no-requeue``: a node failure ends the
    job (the fit is not restarted from iteration 0 over its interim potential)."""
    duration = execution.duration
    hours, rest = divmod(duration.seconds, 3600)
    time_limit = f"{duration.days}-{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    command = [
        "sbatch",
        "--parsable",
        f"--job-name={job_name(request.name)}",
        f"--chdir={request.directory}",
        "--output=/dev/null",  # the script sends the program's output to request.output
        "--error=/dev/null",
        "--no-requeue",
        "--export=ALL",
        f"--nodes={execution.nodes}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={execution.cpus}",
        f"--time={time_limit}",
    ]
    if execution.gpus:
        command.append(f"--gpus-per-task={execution.gpus}")
    if execution.queue is not None:
        command.append(f"--partition={execution.queue}")
    if execution.account is not None:
        command.append(f"--account={execution.account}")
    return [*command, str(script)]


def check_plain(backend: str, request: JobRequest, work_dir: Path) -> None:
    """ConfigurationError unless every path and value of ``request`` is one plain shell word:
    psij's PBS and LSF scripts put them inside double quotes, where ``$(…)`` runs."""
    values = {
        "the run directory": str(request.directory),
        "the job's output file": str(request.output),
        "the job's files": str(work_dir),
        "the Python interpreter": request.executable,
        **{f"argument {i + 1}": argument for i, argument in enumerate(request.arguments)},
        **{f"environment {name}": value for name, value in request.environment.items()},
    }
    if request.setup_script is not None:
        values["the setup file"] = str(request.setup_script)
    for what, value in values.items():
        if shlex.quote(value) != value:
            raise ConfigurationError(
                [
                    (
                        "trainer.execution.type",
                        f"{backend}: {what} {value!r} has characters (spaces, quotes, $, "
                        f"non-ASCII, ...) that psij's {backend} job script cannot quote; use "
                        "a path of letters, digits and ._-/ only (SLURM takes any path)",
                    )
                ]
            )


def _variable(name: str) -> str:
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"not an environment variable name: {name!r}")
    return name
