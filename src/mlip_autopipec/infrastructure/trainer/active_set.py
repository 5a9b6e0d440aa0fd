"""The active set of a fitted potential (pace_activeset): its extrapolation grade.

A potential without an active set is still a valid potential: only its extrapolation grade is
unavailable. pace_activeset fails when the training set holds fewer atomic environments of an
element than the basis has functions for it; the fit then ends with a warning, not an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mlip_autopipec.config.config_model import ActiveSetSettings
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.infrastructure.trainer.batch_job import JobResult
from mlip_autopipec.infrastructure.trainer.outputs import FITTING_DATA, OUTPUT_POTENTIAL_YAML

log = logging.getLogger(__name__)

ACTIVE_SET = "output_potential.asi"
ACTIVESET_LOG = "pace_activeset.log"


def activeset_arguments(settings: ActiveSetSettings) -> list[str]:
    """pace_activeset's arguments: the training data pacemaker used and the potential."""
    options = ["-g", str(settings.gamma_tolerance)] + (["-a"] if settings.all_atoms else [])
    return ["-d", FITTING_DATA, *options, OUTPUT_POTENTIAL_YAML]


def build_active_set(
    activeset: str,
    settings: ActiveSetSettings,
    workdir: Path,
    run: Callable[[str, list[str], str], None],
) -> str | None:
    """Run pace_activeset with ``run(program, arguments, log name)`` in ``workdir``; the active
    set's file name, or None (with a warning) when it cannot be built."""
    try:
        run(activeset, activeset_arguments(settings), ACTIVESET_LOG)
        if not (workdir / ACTIVE_SET).exists():
            raise TrainerError(
                f"pace_activeset wrote no active set ({ACTIVE_SET} is missing)",
                workdir=workdir,
                log_path=workdir / ACTIVESET_LOG,
            )
    except TrainerError as error:
        reason = error.log_tail[-1] if error.log_tail else error.message
        _no_active_set(workdir, reason, "")
        return None
    return ACTIVE_SET


def active_set_of_job(job_result: JobResult, workdir: Path) -> str | None:
    """The active set that pace_activeset wrote in a batch job, or None (with a warning)."""
    outcome = job_result.outcome("pace_activeset")
    if outcome is not None and outcome.succeeded and (workdir / ACTIVE_SET).exists():
        return ACTIVE_SET
    reason = "it did not run" if outcome is None else (outcome.message or "no active set written")
    if outcome is not None and outcome.log_tail:
        reason = outcome.log_tail[-1]
    _no_active_set(workdir, reason, " in the batch job")
    return None


def _no_active_set(workdir: Path, reason: str, where: str) -> None:
    (workdir / ACTIVE_SET).unlink(missing_ok=True)
    log.warning(
        "the potential has no active set, so no extrapolation grade: pace_activeset failed%s "
        "(%s; see %s)",
        where,
        reason.strip(),
        workdir / ACTIVESET_LOG,
    )
