"""The entry point of a batch job: ``python -m mlip_autopipec.infrastructure.trainer.batch.entry
RUN_DIR`` runs the steps of the run directory (``batch_job.run_steps``) on the compute node.

A module of its own, which nothing imports, so that ``python -m`` runs it exactly once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlip_autopipec.infrastructure.trainer.batch.node import run_steps


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job: run the steps of the run directory given as the argument."""
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        print("usage: python -m mlip_autopipec.infrastructure.trainer.batch.entry RUN_DIR")
        return 2
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    if restarts.strip() not in {"", "0"}:  # requeued: the fit would start over its interim files
        print(f"the scheduler restarted this job (restart {restarts}): not run again", flush=True)
        return 1
    result = run_steps(Path(arguments[0]))
    failed = result.failed_step
    if failed is not None:
        print(f"{failed.name} failed: {failed.message}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
