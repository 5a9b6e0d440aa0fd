"""A real pacemaker fit of a tiny EMT dataset: the potential deploys and reproduces pacemaker."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.trainer import create_trainer
from mlip_autopipec.infrastructure.trainer.outputs import TRAIN_PREDICTIONS, metrics_from_errors
from mlip_autopipec.oracle.emt import label_with_emt

from ...conftest import cu_pt_structures

pytestmark = [pytest.mark.slow, pytest.mark.requires_pacemaker]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Potential:
    dataset = label_with_emt(cu_pt_structures(count=30, seed=1), source="tiny EMT Cu-Pt")
    config = parse_trainer_config(
        {
            "type": "pacemaker",
            "cutoff": 4.5,
            "ace_params": {"number_of_functions_per_element": 12},
            "fit": {"maxiter": 30, "test_size": 0.2, "display_step": 10},
            "threads": 2,
        }
    )
    return create_trainer(config).train(dataset, tmp_path_factory.mktemp("fit") / "run")


def test_the_yace_loads_in_pyace_and_the_record_is_complete(fitted: Potential) -> None:
    from pyace import ACECTildeBasisSet

    basis = ACECTildeBasisSet(str(fitted.yace_path))
    assert list(basis.elements_name) == ["Cu", "Pt"]
    assert fitted.train_metrics is not None and fitted.test_metrics is not None
    assert fitted.test_metrics.n_structures == 6
    assert fitted.provenance.tool_versions["python-ace"]
    assert Potential.load(fitted.run_dir) == fitted


def test_ase_calculator_reproduces_pacemakers_train_rmse_on_the_label_scale(
    fitted: Potential,
) -> None:
    dataset = label_with_emt(cu_pt_structures(count=30, seed=1))
    by_name = {structure.name: structure for structure in dataset}
    train_names = pd.read_pickle(fitted.run_dir / TRAIN_PREDICTIONS, compression="gzip")["name"]
    calculator = fitted.ase_calculator()

    energy_errors, force_errors = [], []
    for name in train_names:
        structure = by_name[name]
        atoms = structure.atoms.copy()
        atoms.calc = calculator
        # Total energies, as labelled: the reference energies are inside the potential (E0).
        energy_errors.append((atoms.get_potential_energy() - structure.energy) / len(atoms))
        force_errors.append(atoms.get_forces() - structure.forces)
    ours = metrics_from_errors(np.array(energy_errors), np.vstack(force_errors))

    assert fitted.train_metrics is not None
    assert ours.energy_rmse_mev_per_atom == pytest.approx(
        fitted.train_metrics.energy_rmse_mev_per_atom, rel=0.01
    )
    assert ours.force_rmse_mev_per_angstrom == pytest.approx(
        fitted.train_metrics.force_rmse_mev_per_angstrom, rel=0.01
    )


def test_lammps_commands_name_the_yace_and_the_elements(fitted: Potential) -> None:
    assert fitted.lammps_commands() == [
        "pair_style pace",
        f"pair_coeff * * {fitted.yace_path} Cu Pt",
    ]
