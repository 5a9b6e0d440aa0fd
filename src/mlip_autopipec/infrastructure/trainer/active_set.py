"""The active set of a fitted potential (pace_activeset): its extrapolation grade.

A potential without an active set is still a valid potential: only its extrapolation grade is
unavailable. pace_activeset fails when the training set holds fewer atomic environments of an
element than the basis has functions for it; the fit then ends with a warning, not an error.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mlip_autopipec.config.config_model import ActiveSetSettings
from mlip_autopipec.infrastructure.rundir.files import (
    ACTIVE_SET,
    ACTIVESET_LOG,
    FITTING_DATA,
    OUTPUT_POTENTIAL_YAML,
)
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile
from mlip_autopipec.infrastructure.trainer.programs.steps import JobResult, ProgramStep

log = logging.getLogger(__name__)


def activeset_arguments(settings: ActiveSetSettings) -> list[str]:
    """pace_activeset's arguments: the training data pacemaker used and the potential."""
    options = ["-g", str(settings.gamma_tolerance)] + (["-a"] if settings.all_atoms else [])
    return ["-d", FITTING_DATA, *options, OUTPUT_POTENTIAL_YAML]


def activeset_step(profile: ProgramProfile, settings: ActiveSetSettings) -> ProgramStep:
    """pace_activeset after the fit: optional, a potential without an active set is still one."""
    return profile.program_step(
        "pace_activeset",
        activeset_arguments(settings),
        required=False,
        title="active set (pace_activeset)",
    )


def active_set_of(result: JobResult, workdir: Path) -> str | None:
    """The active set that pace_activeset wrote (its step in ``result``), or None with a
    warning saying why there is none."""
    outcome = result.outcome("pace_activeset")
    if outcome is not None and outcome.succeeded and (workdir / ACTIVE_SET).exists():
        return ACTIVE_SET
    reason = "it did not run" if outcome is None else (outcome.message or "no active set written")
    if outcome is not None and outcome.succeeded:
        reason = f"pace_activeset wrote no active set ({ACTIVE_SET} is missing)"
    elif outcome is not None and outcome.log_tail:
        reason = outcome.log_tail[-1]
    (workdir / ACTIVE_SET).unlink(missing_ok=True)
    log.warning(
        "the potential has no active set, so no extrapolation grade: pace_activeset failed "
        "(%s; see %s)",
        reason.strip(),
        workdir / ACTIVESET_LOG,
    )
    return None
