"""Potential: the record of a trained potential, saved beside its files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mlip_autopipec.config.config_model import NoBaseline, ZBLBaseline
from mlip_autopipec.domain_models.metrics import FitMetrics
from mlip_autopipec.domain_models.potential import Potential, Provenance


def _potential(run_dir: Path) -> Potential:
    return Potential(
        run_dir=run_dir,
        trainer="pacemaker",
        yace_file="potential.yace",
        yaml_file="output_potential.yaml",
        elements=("Cu", "Pt"),
        cutoff=5.0,
        baseline=ZBLBaseline(inner_cutoff=1.0, outer_cutoff=2.0),
        reference_energies={"Cu": -3.5, "Pt": -5.1},
        train_metrics=FitMetrics(
            energy_rmse_mev_per_atom=3.0,
            energy_mae_mev_per_atom=2.0,
            force_rmse_mev_per_angstrom=40.0,
            force_mae_mev_per_angstrom=30.0,
            n_structures=90,
        ),
        provenance=Provenance(
            tool_versions={"python-ace": "0.4.0rc1"},
            data_sha256="d" * 64,
            config_sha256="c" * 64,
            n_structures=100,
            n_atoms=1600,
        ),
    )


def test_save_and_load_round_trip_with_paths_relative_to_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    potential = _potential(run)
    record = potential.save()

    stored = json.loads(record.read_text())
    assert stored["yace_file"] == "potential.yace"
    assert "run_dir" not in stored
    assert Potential.load(record) == potential
    assert Potential.load(run) == potential


def test_a_moved_run_directory_still_points_at_its_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "potential.yace").write_text("elements: [Cu, Pt]\n")
    _potential(run).save()
    shutil.move(run, tmp_path / "moved")

    moved = Potential.load(tmp_path / "moved")
    assert moved.yace_path == (tmp_path / "moved" / "potential.yace").resolve()
    assert moved.yace_path.exists()


def test_lammps_commands_keep_the_element_order_of_the_potential(tmp_path: Path) -> None:
    commands = _potential(tmp_path).model_copy(update={"baseline": NoBaseline()}).lammps_commands()
    assert commands[0] == "pair_style pace"
    assert commands[1].endswith("potential.yace Cu Pt")
