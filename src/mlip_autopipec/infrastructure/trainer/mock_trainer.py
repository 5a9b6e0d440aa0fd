"""A trainer that fits nothing: for testing the pipeline's flow without pacemaker."""

from __future__ import annotations

import logging
from pathlib import Path

from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.rundir.claim import claim_run_directory
from mlip_autopipec.infrastructure.rundir.files import MOCK_POTENTIAL
from mlip_autopipec.infrastructure.trainer.base import BaseTrainer
from mlip_autopipec.infrastructure.trainer.plan import plan_run, write_inputs

log = logging.getLogger(__name__)


PLACEHOLDER_TEXT = """\
# MOCK POTENTIAL - NOT A REAL PACE POTENTIAL.
# Written by mlip-autopipec's mock trainer (trainer.type: mock), which prepares the run
# directory (data file, input.yaml) but fits nothing. It cannot be evaluated.
mock: true
"""


class MockTrainer(BaseTrainer):
    """Writes pacemaker's inputs and a marked placeholder potential; runs no program."""

    def train(
        self,
        dataset: Dataset,
        workdir: Path,
        *,
        test_dataset: Dataset | None = None,
        previous: Potential | None = None,
    ) -> Potential:
        if previous is not None:
            raise ConfigurationError(
                [
                    (
                        "trainer.type",
                        "mock fits nothing: a next generation (previous) needs pacemaker",
                    )
                ]
            )
        dataset, test_dataset = self.split_copies(dataset, test_dataset)
        accounted = self.account_for_structures(dataset)
        if test_dataset is not None:
            self.check_test_dataset(accounted.fit, test_dataset)
        with claim_run_directory(workdir, replaces=(MOCK_POTENTIAL,)) as run:
            return self._train(accounted.fit, run.path, accounted.free_atom_energies, test_dataset)

    def _train(
        self,
        dataset: Dataset,
        workdir: Path,
        free_atom_energies: dict[str, float],
        test_dataset: Dataset | None,
    ) -> Potential:
        if self.config.active_set.enabled:
            log.warning("the mock trainer selects no structures: trainer.active_set is ignored")
        plan = plan_run(
            self.config,
            dataset,
            free_atom_energies=free_atom_energies,
            fitting=test_dataset is None,
            neighbours=self.neighbours,
        )
        write_inputs(dataset, workdir, plan, test_dataset)
        write_text_atomic(workdir / MOCK_POTENTIAL, PLACEHOLDER_TEXT)
        potential = Potential(
            run_dir=workdir,
            trainer="mock",
            yace_file=MOCK_POTENTIAL,
            elements=dataset.elements,
            cutoff=self.config.cutoff,
            baseline=plan.baseline,
            reference_energies=plan.reference_energies,
            reference_energies_warning=plan.reference_energies_warning,
            provenance=self.provenance(dataset),
        )
        potential.save()
        return potential
