"""The pacemaker trainer: fits an ACE potential with pacemaker and converts it for deployment."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from mlip_autopipec.analysis.dimers import check_dimer_curves, dimer_curves, plot_dimer_curves
from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import TrainerError
from mlip_autopipec.infrastructure.trainer.base import BaseTrainer, prepare_workdir
from mlip_autopipec.infrastructure.trainer.input_yaml import INPUT_YAML
from mlip_autopipec.infrastructure.trainer.outputs import (
    OUTPUT_POTENTIAL_YAML,
    RESULT_FILES,
    TEST_PREDICTIONS,
    TRAIN_PREDICTIONS,
    read_prediction_metrics,
)
from mlip_autopipec.infrastructure.trainer.potential_file import (
    add_metadata,
    potential_metadata,
    set_reference_energies,
)
from mlip_autopipec.infrastructure.trainer.runner import resolve_executable, run_program

log = logging.getLogger(__name__)

POTENTIAL_YACE = "potential.yace"
PACEMAKER_LOG = "pacemaker.log"
YAML2YACE_LOG = "pace_yaml2yace.log"
DIMERS_PNG = "dimers.png"


class PacemakerTrainer(BaseTrainer):
    """Fits ACE with ``pacemaker`` and converts the result to ``.yace`` with ``pace_yaml2yace``."""

    def __init__(
        self, config: TrainerConfig, on_output_line: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(config)
        self.on_output_line = on_output_line

    def train(self, dataset: Dataset, workdir: Path) -> Potential:
        executables = self.config.executables
        # 1. Find the programs before anything is written.
        pacemaker = resolve_executable(executables.pacemaker)
        yaml2yace = resolve_executable(executables.pace_yaml2yace)
        workdir = prepare_workdir(workdir)
        for name in (*RESULT_FILES, POTENTIAL_YACE):
            (workdir / name).unlink(missing_ok=True)

        # 2. Write the data file and input.yaml.
        inputs = self.write_inputs(dataset, workdir)

        # 3. Fit.
        environment = program_environment(self.config)
        log.info("fitting %d structures with pacemaker in %s", len(dataset), workdir)
        run_program(
            [pacemaker, INPUT_YAML],
            workdir=workdir,
            log_path=workdir / PACEMAKER_LOG,
            env=environment,
            time_limit_s=self.config.time_limit_seconds,
            on_line=self.on_output_line,
        )
        output_yaml = workdir / OUTPUT_POTENTIAL_YAML
        self._require(output_yaml, "pacemaker finished but wrote no potential", PACEMAKER_LOG)
        add_metadata(output_yaml, potential_metadata(inputs.baseline, inputs.reference_energies))

        # 4. Convert to .yace (under a temporary name: a .yace exists only when complete).
        partial_yace = workdir / f".{POTENTIAL_YACE}.partial"
        run_program(
            [yaml2yace, OUTPUT_POTENTIAL_YAML, "-o", partial_yace.name],
            workdir=workdir,
            log_path=workdir / YAML2YACE_LOG,
            env=environment,
            time_limit_s=self.config.time_limit_seconds,
        )
        self._require(partial_yace, "pace_yaml2yace wrote no .yace file", YAML2YACE_LOG)
        set_reference_energies(partial_yace, inputs.reference_energies)
        partial_yace.replace(workdir / POTENTIAL_YACE)

        # 5. Read pacemaker's own predictions of the final potential.
        self._require(workdir / TRAIN_PREDICTIONS, "pacemaker wrote no predictions", PACEMAKER_LOG)
        train_metrics = read_prediction_metrics(workdir / TRAIN_PREDICTIONS)
        test_path = workdir / TEST_PREDICTIONS
        test_metrics = read_prediction_metrics(test_path) if test_path.exists() else None

        # 6. Record the result.
        potential = Potential(
            run_dir=workdir,
            trainer="pacemaker",
            yace_file=POTENTIAL_YACE,
            yaml_file=OUTPUT_POTENTIAL_YAML,
            elements=dataset.elements,
            cutoff=self.config.cutoff,
            baseline=inputs.baseline,
            reference_energies=inputs.reference_energies,
            train_metrics=train_metrics,
            test_metrics=test_metrics,
            provenance=self.provenance(dataset),
        )

        # 7. Check the deployed potential (ACE + baseline) at short range: isolated dimers.
        curves = dimer_curves(potential.ase_calculator(), potential.elements, potential.cutoff)
        plot_dimer_curves(curves, inputs.shortest_distances, workdir / DIMERS_PNG)
        checks = check_dimer_curves(curves, inputs.shortest_distances)
        potential = potential.model_copy(update={"dimer_checks": tuple(checks)})

        # 8. potential.json is written last: it marks a finished run.
        potential.save()
        return potential

    @staticmethod
    def _require(path: Path, message: str, log_name: str) -> None:
        if not path.exists():
            raise TrainerError(
                f"{message} ({path.name} is missing)",
                workdir=path.parent,
                log_path=path.parent / log_name,
            )


def program_environment(config: TrainerConfig) -> dict[str, str]:
    """Thread counts and visible GPUs for pacemaker (TensorFlow), from the config.

    Threads default to all cores of the machine. GPUs default to those of the machine when it
    has any; otherwise CUDA is hidden, which also spares TensorFlow its search for a GPU.
    """
    threads = str(config.threads or os.cpu_count() or 1)
    environment = {
        "OMP_NUM_THREADS": threads,
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": threads,
        "TF_CPP_MIN_LOG_LEVEL": "1",
    }
    if config.gpu_devices is not None:
        environment["CUDA_VISIBLE_DEVICES"] = config.gpu_devices
    elif not machine_has_gpu():
        environment["CUDA_VISIBLE_DEVICES"] = "-1"
    return environment


def machine_has_gpu() -> bool:
    """True when an NVIDIA driver reports at least one GPU."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())
