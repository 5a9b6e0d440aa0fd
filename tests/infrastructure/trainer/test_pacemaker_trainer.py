"""PacemakerTrainer with fake pacemaker programs on PATH: the flow and every way it can fail."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import yaml

from mlip_autopipec import create_trainer  # the public one: it writes the report
from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, Potential
from mlip_autopipec.errors import FailedChecksError, OutputError, TrainerError
from mlip_autopipec.infrastructure.rundir.files import DATA_FILE, PACEMAKER_LOG, POTENTIAL_YACE
from mlip_autopipec.infrastructure.trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.programs.profile import program_environment

from ...conftest import expect_pacemaker_input


def _trainer(**overrides: object) -> PacemakerTrainer:
    raw = {"type": "pacemaker", "cutoff": 4.5, "b_ref": {"type": "zbl"}, **overrides}
    trainer = create_trainer(parse_trainer_config(raw))
    assert isinstance(trainer, PacemakerTrainer)
    return trainer


def _assert_failed_run_kept_its_inputs(workdir: Path) -> None:
    assert not (workdir / POTENTIAL_JSON).exists()
    assert not (workdir / POTENTIAL_YACE).exists()
    assert (workdir / DATA_FILE).exists()
    assert (workdir / "input.yaml").exists()
    assert (workdir / PACEMAKER_LOG).exists()


@pytest.mark.usefixtures("fake_pacemaker")
def test_whole_flow_returns_a_potential_whose_files_exist(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spec's integration scenario: data write -> config write -> process call -> result,
    with fake programs; it runs without the pacemaker extra too (then the gate is not run)."""
    expect_pacemaker_input(monkeypatch, "zbl_cutoff_4.5")  # the fake checks input.yaml
    workdir = tmp_path / "run"
    potential = _trainer().train(cu_pt_dataset, workdir)

    assert potential.trainer == "pacemaker"
    assert potential.yace_path.exists() and potential.yace_path.parent == workdir.resolve()
    assert potential.yaml_path is not None and potential.yaml_path.exists()
    assert potential.elements == ("Cu", "Pt")
    # The fake predicts 2 meV/atom and 30 meV/Å off: the metrics come from its outputs.
    assert potential.train_metrics is not None and potential.test_metrics is not None
    assert potential.train_metrics.energy_rmse_mev_per_atom == pytest.approx(2.0)
    assert potential.train_metrics.force_rmse_mev_per_angstrom == pytest.approx(30.0)
    assert potential.test_metrics.force_mae_mev_per_angstrom == pytest.approx(30.0)
    assert potential.train_metrics.n_structures + potential.test_metrics.n_structures == len(
        cu_pt_dataset
    )
    assert "fake pacemaker done" in (workdir / PACEMAKER_LOG).read_text()

    # With a ZBL baseline, pacemaker is not given a ZBL core of its own (it would count
    # twice): every bond of the input it ran on fades ACE out by distance, with a zero
    # core-repulsion prefactor.
    bonds = yaml.safe_load((workdir / "input.yaml").read_text())["potential"]["bonds"]
    assert set(bonds) == {"Cu Cu", "Cu Pt", "Pt Cu", "Pt Pt"}
    for bond in bonds.values():
        assert bond["inner_cutoff_type"] == "distance" and bond["core-repulsion"][0] == 0.0

    # The reference energies became the .yace's E0, in the potential's element order.
    yace_head = potential.yace_path.read_text().splitlines()
    e0 = yaml.safe_load(yace_head[1])["E0"]
    assert e0 == pytest.approx([potential.reference_energies[e] for e in ("Cu", "Pt")])

    # The baseline and the reference energies are in the potential file's metadata.
    metadata = yaml.safe_load(potential.yaml_path.read_text())["metadata"]
    assert json.loads(metadata["mlip_autopipec_baseline"])["type"] == "zbl"
    assert json.loads(metadata["mlip_autopipec_reference_energies"]) == pytest.approx(
        potential.reference_energies
    )
    assert metadata["pacemaker_version"] == "0.4.0rc1"  # pacemaker's own entries stay

    # Every fit ends with its report.
    report = workdir / "report" / "mlip_autopipec"
    assert (report / "report.html").exists()
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["train"]["energy_rmse_mev_per_atom"] == pytest.approx(2.0)

    reloaded = Potential.load(workdir)
    assert reloaded == potential
    assert reloaded.provenance.data_sha256 == cu_pt_dataset.fingerprint()


@pytest.mark.requires_pacemaker
@pytest.mark.usefixtures("fake_pacemaker")
def test_the_gate_checks_every_pair_of_the_deployed_potential(
    cu_pt_dataset: Dataset, tmp_path: Path
) -> None:
    workdir = tmp_path / "run"
    potential = _trainer().train(cu_pt_dataset, workdir)
    assert {check.pair for check in potential.dimer_checks} == {
        ("Cu", "Cu"),
        ("Cu", "Pt"),
        ("Pt", "Pt"),
    }
    assert (workdir / "dimers.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.usefixtures("fake_pacemaker")
def test_without_pyace_the_potential_is_recorded_unchecked(
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pacemaker run from another environment (or a fake): the gate cannot evaluate ACE here,
    so the potential is neither passed nor failed, and the log says so."""
    monkeypatch.setitem(sys.modules, "pyace", None)  # import pyace: ModuleNotFoundError
    workdir = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        potential = _trainer().train(cu_pt_dataset, workdir)
    assert potential.checks_passed is None
    assert potential.dimer_checks == () and potential.compression_checks == ()
    assert json.loads((workdir / POTENTIAL_JSON).read_text())["checks_passed"] is None
    assert "no safety checks" in caplog.text and "UNCHECKED" in caplog.text
    assert not (workdir / "dimers.png").exists()


@pytest.mark.usefixtures("fake_pacemaker")
def test_the_fake_fails_the_run_on_an_input_other_than_its_reference(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expect_pacemaker_input(monkeypatch, "zbl_cutoff_4.5")
    workdir = tmp_path / "run"
    with pytest.raises(TrainerError) as caught:
        _trainer(cutoff=5.0).train(cu_pt_dataset, workdir)
    assert caught.value.exit_code == 4
    differences = (workdir / PACEMAKER_LOG).read_text()
    assert "differs from zbl_cutoff_4.5.yaml: cutoff: expected 4.5, got 5.0" in differences
    assert "potential.bonds.Cu Pt.rcut: expected 4.5, got 5.0" in differences
    _assert_failed_run_kept_its_inputs(workdir)


def test_missing_executable_says_how_to_install_before_writing_anything(
    cu_pt_dataset: Dataset, tmp_path: Path
) -> None:
    trainer = _trainer(executables={"pacemaker": "pacemaker-that-is-not-installed"})
    workdir = tmp_path / "run"
    with pytest.raises(TrainerError) as caught:
        trainer.train(cu_pt_dataset, workdir)
    message = str(caught.value)
    assert "pacemaker-that-is-not-installed" in message
    assert 'pip install ".[pacemaker]"' in message
    assert not workdir.exists()


def test_non_zero_exit_keeps_data_input_and_log(
    cu_pt_dataset: Dataset, tmp_path: Path, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "fail")
    workdir = tmp_path / "run"
    with pytest.raises(TrainerError) as caught:
        _trainer().train(cu_pt_dataset, workdir)
    error = caught.value
    assert error.exit_code == 3
    assert error.log_path == workdir.resolve() / PACEMAKER_LOG
    assert error.command is not None and error.command[-1] == "input.yaml"
    assert error.log_tail[-1] == "log line 100"
    assert "log line 100" in str(error)
    assert "log line 100" in (workdir / PACEMAKER_LOG).read_text()
    _assert_failed_run_kept_its_inputs(workdir)


def test_crash_after_output_shows_the_traceback(
    cu_pt_dataset: Dataset, tmp_path: Path, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "crash")
    workdir = tmp_path / "run"
    with pytest.raises(TrainerError) as caught:
        _trainer().train(cu_pt_dataset, workdir)
    assert "RuntimeError: fake pacemaker crashed" in str(caught.value)
    assert "about to crash" in (workdir / PACEMAKER_LOG).read_text()
    _assert_failed_run_kept_its_inputs(workdir)


def test_time_limit_stops_the_fit(
    cu_pt_dataset: Dataset, tmp_path: Path, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "sleep")
    workdir = tmp_path / "run"
    with pytest.raises(TrainerError) as caught:
        _trainer(time_limit_seconds=3).train(cu_pt_dataset, workdir)
    assert "time limit" in str(caught.value)
    _assert_failed_run_kept_its_inputs(workdir)


def test_exit_zero_without_a_potential_is_a_failure(
    cu_pt_dataset: Dataset, tmp_path: Path, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "no_output")
    workdir = tmp_path / "run"
    with pytest.raises(TrainerError, match="wrote no potential"):
        _trainer().train(cu_pt_dataset, workdir)
    _assert_failed_run_kept_its_inputs(workdir)


@pytest.mark.usefixtures("fake_pacemaker")
def test_a_finished_run_is_not_overwritten(cu_pt_dataset: Dataset, tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    _trainer().train(cu_pt_dataset, workdir)
    record = (workdir / POTENTIAL_JSON).read_text()
    with pytest.raises(OutputError, match="already holds a trained potential"):
        _trainer().train(cu_pt_dataset, workdir)
    assert (workdir / POTENTIAL_JSON).read_text() == record


@pytest.mark.usefixtures("fake_pacemaker")
def test_rerun_after_a_failure_starts_clean(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "run"
    _trainer().train(cu_pt_dataset, workdir)
    (workdir / POTENTIAL_JSON).unlink()  # as if the first run had stopped before its record
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "no_output")
    with pytest.raises(TrainerError):
        _trainer().train(cu_pt_dataset, workdir)
    assert not (workdir / "output_potential.yaml").exists()  # ours, stale: removed


@pytest.mark.usefixtures("fake_pacemaker")
def test_a_foreign_result_file_is_refused_and_kept(cu_pt_dataset: Dataset, tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "output_potential.yaml").write_text("someone else's: true\n")
    with pytest.raises(OutputError, match="not made by mlip-autopipec"):
        _trainer().train(cu_pt_dataset, workdir)
    assert sorted(p.name for p in workdir.iterdir()) == ["output_potential.yaml"]


def test_environment_sets_threads_and_hides_gpus_unless_asked() -> None:
    config = parse_trainer_config({"type": "pacemaker", "cutoff": 5.0, "threads": 3})
    environment = program_environment(config)
    assert environment["OMP_NUM_THREADS"] == "3"
    assert environment["TF_NUM_INTRAOP_THREADS"] == "3"
    assert environment["TF_NUM_INTEROP_THREADS"] == "3"
    with_gpu = parse_trainer_config({"type": "pacemaker", "cutoff": 5.0, "gpu_devices": "0,1"})
    assert program_environment(with_gpu)["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_environment_defaults_to_all_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlip_autopipec.infrastructure.trainer.programs.profile as module

    monkeypatch.setattr(module.os, "cpu_count", lambda: 6)
    monkeypatch.setattr(module, "machine_has_gpu", lambda: False)
    config = parse_trainer_config({"type": "pacemaker", "cutoff": 5.0})
    environment = program_environment(config)
    assert environment["OMP_NUM_THREADS"] == "6"
    assert environment["CUDA_VISIBLE_DEVICES"] == "-1"


def test_a_failed_active_set_leaves_a_valid_potential_without_one(
    cu_pt_dataset: Dataset,
    tmp_path: Path,
    fake_pacemaker: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "activeset_fail")
    with caplog.at_level(logging.WARNING):
        potential = _trainer().train(cu_pt_dataset, tmp_path / "run")
    assert potential.active_set_file is None
    assert not (tmp_path / "run" / "output_potential.asi").exists()
    assert "Insufficient atomic environments" in caplog.text
    assert (tmp_path / "run" / POTENTIAL_JSON).exists()
    with pytest.raises(ValueError, match="no active set"):
        potential.ase_calculator(extrapolation=True)


@pytest.mark.usefixtures("fake_pacemaker")
def test_the_active_set_is_part_of_the_potential(cu_pt_dataset: Dataset, tmp_path: Path) -> None:
    potential = _trainer().train(cu_pt_dataset, tmp_path / "run")
    assert potential.active_set_path == tmp_path.resolve() / "run" / "output_potential.asi"
    assert potential.active_set_path.exists()
    log = (tmp_path / "run" / "pace_activeset.log").read_text()
    assert "-d fitting_data_info.pckl.gzip -g 1.01 -a output_potential.yaml" in log


@pytest.mark.requires_pacemaker
@pytest.mark.usefixtures("fake_pacemaker")
def test_a_potential_that_fails_the_safety_gate_is_kept_marked_and_raises(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "no_core")  # no repulsion below the data
    workdir = tmp_path / "run"
    with pytest.raises(FailedChecksError) as caught:
        _trainer().train(cu_pt_dataset, workdir)
    message = str(caught.value)
    assert "FAILED its safety checks" in message
    assert "compression of structure 0 'alloy_0': the energy falls as it is compressed" in message
    assert "--accept-failed-checks" in message
    assert caught.value.failures and all(f in message for f in caught.value.failures)

    record = json.loads((workdir / POTENTIAL_JSON).read_text())
    assert record["checks_passed"] is False
    with pytest.warns(UserWarning, match="FAILED its safety checks"):
        loaded = Potential.load(workdir)
    assert any(not check.passed for check in loaded.compression_checks)


@pytest.mark.requires_pacemaker
@pytest.mark.usefixtures("fake_pacemaker")
def test_accept_failed_checks_returns_the_potential_marked_as_failed(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "no_core")
    potential = _trainer(accept_failed_checks=True).train(cu_pt_dataset, tmp_path / "run")
    assert potential.checks_passed is False


@pytest.mark.requires_pacemaker
@pytest.mark.usefixtures("fake_pacemaker")
def test_a_safe_potential_passes_the_gate(cu_pt_dataset: Dataset, tmp_path: Path) -> None:
    potential = _trainer().train(cu_pt_dataset, tmp_path / "run")
    assert potential.checks_passed is True
    assert len(potential.compression_checks) == 5
    assert all(check.passed for check in potential.compression_checks)
    assert all(check.energy_rise_ev > 0 for check in potential.compression_checks)


@pytest.mark.requires_pacemaker
@pytest.mark.usefixtures("fake_pacemaker")
def test_a_time_budget_reaches_pacemaker_and_its_end_is_recorded(
    cu_pt_dataset: Dataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    trainer = _trainer(ace_params={"number_of_functions_per_element": 8}, fit={"time_budget": "1h"})
    potential = trainer.train(cu_pt_dataset, tmp_path / "run")

    assert "cost estimate: about" in caplog.text  # before the fit
    assert caplog.text.index("cost estimate") < caplog.text.index("the time budget ended")
    cost = potential.cost
    assert cost is not None and cost.time_budget_s == 3600
    assert cost.stopped_at_budget and cost.iterations == 2
    assert cost.s_per_iteration == pytest.approx(0.5)
    assert cost.estimated_iterations > 1000  # an hour of a tiny fit
    assert Potential.load(tmp_path / "run").cost == cost
    written = yaml.safe_load((tmp_path / "run" / "input.yaml").read_text())
    assert written["fit"]["maxiter"] >= cost.estimated_iterations


@pytest.mark.usefixtures("fake_pacemaker")
def test_copies_within_the_data_stay_on_one_side_of_the_test_split(
    cu_pt_dataset: Dataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The Python trainer splits as the CLI does (a loop's generation 0 is fitted this way)."""
    from mlip_autopipec.domain_models.lineage import same_structure

    # Structure 0 four times, 1 to 3 twice: a random split would put twins on both sides.
    data = cu_pt_dataset.subset([*range(len(cu_pt_dataset)), 0, 0, 0, 1, 2, 3])
    with caplog.at_level(logging.WARNING):
        potential = _trainer(fit={"test_size": 0.3}).train(data, tmp_path / "run")
    assert "6 structure(s) of the data are identical to another one (4 group(s))" in caplog.text
    training = Dataset.read(tmp_path / "run" / "training_set.extxyz")
    test = Dataset.read(tmp_path / "run" / "test_set.extxyz")
    assert len(training) + len(test) == len(data) and len(test) > 0
    assert not any(same_structure(t, s) for t in test for s in training)
    assert potential.test_metrics is not None
    assert potential.test_metrics.n_structures == len(test)


@pytest.mark.usefixtures("fake_pacemaker")
def test_a_tiny_test_set_is_warned_about(
    cu_pt_dataset: Dataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _trainer(fit={"test_size": 0.2}).train(cu_pt_dataset, tmp_path / "run")
    assert "the test set will hold 2 structure(s)" in caplog.text
    # After the fit, by element: the fake tested alloy_0 and alloy_1, 15 Cu atoms and 1 Pt.
    assert "the test set holds few atoms of Pt (1): its errors say" in caplog.text


@pytest.mark.usefixtures("fake_pacemaker")
def test_a_fit_ended_by_pacemakers_early_stopping_is_recorded(
    cu_pt_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "early_stop")  # logs it after iteration 7
    potential = _trainer(fit={"early_stop_patience": 2}).train(cu_pt_dataset, tmp_path / "run")
    assert potential.fit_stop is not None and potential.fit_stop.early_stop
    assert potential.fit_stop.stopped_at_iteration == 7
    assert Potential.load(tmp_path / "run").fit_stop == potential.fit_stop


@pytest.mark.requires_pacemaker  # the estimate counts the basis functions with pyace
@pytest.mark.usefixtures("fake_pacemaker")
def test_a_fit_without_a_budget_records_its_cost(cu_pt_dataset: Dataset, tmp_path: Path) -> None:
    _trainer().train(cu_pt_dataset, tmp_path / "run")
    cost = Potential.load(tmp_path / "run").cost
    assert cost is not None and not cost.stopped_at_budget and cost.time_budget_s is None


def test_energy_weights_follow_what_the_compositions_allow(cu_pt_dataset: Dataset) -> None:
    """Cu-Pt cells of several compositions make pacemaker's convex hull; ethanol and water
    (two compositions of three elements) do not, so the lowest energy is the reference."""
    from ase.build import molecule
    from ase.calculators.singlepoint import SinglePointCalculator

    molecules = []
    for name, energy in (("CH3CH2OH", -310.0), ("H2O", -140.0)):
        atoms = molecule(name, vacuum=5.0)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=atoms.positions * 0)
        molecules.append(atoms)
    trainer = _trainer(fit={"weighting": "energy_based", "test_size": 0})
    for dataset, expected in (
        (cu_pt_dataset, "convex_hull"),
        (Dataset.from_atoms(molecules), "cohesive"),
    ):
        weighting = trainer.plan_run(dataset).pacemaker_input.fit.weighting
        assert weighting is not None and weighting["energy"] == expected
