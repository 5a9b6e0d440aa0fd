"""Settings of the active sets: D-optimal selection before the fit, the potential's active set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import (
    Field,
    PositiveInt,
    model_validator,
)

from mlip_autopipec.config.base import NotBool, StrictModel


class ActiveSetSettings(StrictModel):
    """Active sets: D-optimal selection of the training structures before the fit (pace_select,
    off by default), and the active set of the fitted potential (pace_activeset, always).

    The structures whose atomic environments add most to the volume spanned by the ACE basis
    projections (MaxVol) are kept; the fit then runs on them alone. Selection repeats on the
    structures left until the requested number is reached.
    """

    enabled: bool = Field(False, description="select the training structures before the fit")
    max_structures: Annotated[PositiveInt, NotBool] | None = Field(
        None, description="number of structures to keep"
    )
    fraction: Annotated[float, NotBool, Field(gt=0.0, le=1.0)] | None = Field(
        None, description="fraction of the structures to keep, in (0, 1]"
    )
    max_atoms: PositiveInt | None = Field(
        None,
        description=(
            "atoms to keep: a cost budget (a fit's time per iteration grows with its atoms; "
            "D-optimality by structures favours large ones)"
        ),
    )
    batch_size: PositiveInt | None = Field(
        None, description="structures per batch of pace_select (bounds its memory); None: all"
    )
    gamma_tolerance: Annotated[float, NotBool, Field(ge=1.0)] = Field(
        1.01, description="MaxVol tolerance of pace_select and pace_activeset"
    )
    all_atoms: bool = Field(
        True,
        description=(
            "build the fitted potential's active set from every training atom, so training "
            "structures grade gamma <= gamma_tolerance; false: pacemaker's default, which leaves "
            "out atoms with outlying force errors (they then grade as extrapolative)"
        ),
    )
    previous_potential: Path | None = Field(
        None,
        description=(
            "run directory of the previous generation's potential: the selection then adds to "
            "what its active set already covers"
        ),
    )

    @model_validator(mode="after")
    def _one_size(self) -> ActiveSetSettings:
        sizes = [self.max_structures, self.fraction, self.max_atoms]
        if sum(size is not None for size in sizes) > 1:
            raise ValueError("give one of max_structures, fraction or max_atoms, not both")
        if self.enabled and all(size is None for size in sizes):
            raise ValueError("an enabled selection needs max_structures or fraction (or max_atoms)")
        return self
