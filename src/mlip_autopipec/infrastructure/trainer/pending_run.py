"""What the post-processing of a fit needs from before it, kept in the run directory."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from mlip_autopipec.config.config_model import Baseline
from mlip_autopipec.domain_models.potential import Provenance, Selection

#: The record of a batch run (``batch.BatchRecord``), which holds a PendingRun.
BATCH_JOB_JSON = "batch_job.json"


class PendingRun(BaseModel):
    """What the post-processing needs from before the fit (decided from the whole dataset).

    A batch run keeps it in ``batch_job.json``, so that another process can finish the run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    elements: tuple[str, ...]
    baseline: Baseline
    reference_energies: dict[str, float]
    shortest_distances: list[tuple[str, str, float]]
    selection: Selection | None
    provenance: Provenance

    def distances(self) -> dict[tuple[str, str], float]:
        """Shortest distance (Å) of each element pair in the data."""
        return {(a, b): distance for a, b, distance in self.shortest_distances}
