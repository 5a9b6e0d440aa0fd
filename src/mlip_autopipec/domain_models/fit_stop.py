"""How a fit ended when it did not simply run its iterations: resumed, stopped early, or
finished from an interim potential."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FitStop(BaseModel):
    """Where the optimiser stopped and what the potential was built from (``potential.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stopped_at_iteration: int | None = Field(
        None,
        description="iterations of the whole fit, the interrupted ones of a resumed fit included",
    )
    finished_from: Literal["fit", "interim"] = Field(
        "fit",
        description=(
            "fit: pacemaker's final potential; interim: the last interim potential of a fit that "
            "was interrupted (mlip-autopipec finish), not a converged or completed fit"
        ),
    )
    resumed_from_iteration: int | None = Field(
        None, description="train --resume: the interim potential's iteration the fit went on from"
    )
    early_stop: bool = Field(
        False, description="ended by fit.early_stop_patience: the loss had stopped improving"
    )

    def describe(self) -> str:
        """One line for the summary."""
        parts = []
        if self.finished_from == "interim":
            parts.append(
                f"INTERIM potential: the fit was interrupted at iteration "
                f"{self.stopped_at_iteration} and finished from its last interim potential"
            )
        if self.resumed_from_iteration is not None:
            parts.append(
                f"resumed from iteration {self.resumed_from_iteration}, "
                f"{self.stopped_at_iteration} iterations in all"
            )
        if self.early_stop:
            parts.append(
                f"stopped early at iteration {self.stopped_at_iteration}: the loss had stopped "
                "improving (fit.early_stop_patience)"
            )
        if not parts:
            parts.append(f"{self.stopped_at_iteration} iterations")
        return "fit: " + "; ".join(parts)
