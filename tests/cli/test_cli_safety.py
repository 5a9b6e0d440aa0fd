"""Unattended runs, as a user meets them: no user file lost, one run per directory, no orphaned
process, every structure accounted for, no pickle trusted, settings that validate work, no
traceback, and gamma with its tolerance (issue 10's eight reproductions)."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.io import write

from mlip_autopipec.analysis.extrapolation import StructureGrade, format_grades
from mlip_autopipec.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_TRAINING_FAILED, main
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.rundir.files import MANIFEST

from ..conftest import TrainCli, interrupt_as_from_a_terminal

PACEMAKER_CONFIG = "trainer:\n  type: pacemaker\n  cutoff: 5\n"
MOCK_CONFIG = "trainer:\n  type: mock\n  cutoff: 5.0\n"
#: s; generous bounds for a subprocess to reach a state (the tests poll, they do not time).
PATIENCE_S = 60.0


def _checksums(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory``, by relative path."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _labelled(atoms: Atoms, name: str) -> Atoms:
    atoms = atoms.copy()
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.info["name"] = name
    return atoms


# -- 1. user files are never deleted or overwritten -----------------------------------------------


def test_train_refuses_a_foreign_directory_and_changes_nothing(cli: TrainCli) -> None:
    hand_run = cli.tmp_path / "hand_run"  # where someone ran pacemaker by hand
    hand_run.mkdir()
    for name in ("output_potential.yaml", "metrics.txt", "train_pred.pckl.gzip", "input.yaml"):
        (hand_run / name).write_text(f"the user's {name}\n")
    (hand_run / "potential.yace").write_text("a potential\n")
    before = _checksums(hand_run)

    assert cli.train(MOCK_CONFIG, out=hand_run) == EXIT_BAD_INPUT

    assert "not made by mlip-autopipec" in cli.error_without_traceback()
    assert _checksums(hand_run) == before  # nothing written, nothing deleted


def test_a_finished_run_is_a_usage_error_and_stays(cli: TrainCli) -> None:
    out = cli.out
    assert cli.train(MOCK_CONFIG) == EXIT_OK
    before = _checksums(out)

    assert cli.train(MOCK_CONFIG) == EXIT_BAD_INPUT

    assert "already holds a trained potential" in cli.error_without_traceback()
    assert _checksums(out) == before


@pytest.mark.parametrize("where", ["a_file", "below_a_file"])
def test_an_unusable_out_is_one_line_and_exit_2(cli: TrainCli, tmp_path: Path, where: str) -> None:
    (tmp_path / "a_file").write_text("not a directory\n")
    out = tmp_path / "a_file" if where == "a_file" else tmp_path / "a_file" / "run"

    assert cli.train(MOCK_CONFIG, out=out) == EXIT_BAD_INPUT

    error = cli.error_without_traceback()
    assert str(tmp_path / "a_file") in error and len(error.strip().splitlines()) == 1
    assert (tmp_path / "a_file").read_text() == "not a directory\n"


def test_select_never_writes_over_its_input(cli: TrainCli) -> None:
    arguments = cli.config_and_data(PACEMAKER_CONFIG)
    data = Path(arguments[3])
    before = _checksums(cli.tmp_path)

    code = main(["select", *arguments, "--out", str(data), "--max-structures", "5"])

    assert code == EXIT_BAD_INPUT
    error = cli.error_without_traceback()
    assert "already exists" in error and "--overwrite" in error
    assert _checksums(cli.tmp_path) == before  # not even a selection directory


@pytest.mark.requires_pacemaker
def test_select_overwrites_only_when_asked(cli: TrainCli) -> None:
    arguments = cli.config_and_data(
        PACEMAKER_CONFIG + "  ace_params: {number_of_functions_per_element: 6}\n"
    )
    out = cli.tmp_path / "selected.extxyz"
    out.write_text("the user's file\n")
    command = ["select", *arguments, "--out", str(out), "--max-structures", "4"]
    assert main(command) == EXIT_BAD_INPUT
    assert out.read_text() == "the user's file\n"

    assert main([*command, "--overwrite"]) == EXIT_OK
    assert len(Dataset.read(out)) == 4


# -- 2. every structure accounted for -------------------------------------------------------------


def test_a_free_atom_becomes_the_reference_energy_and_is_not_fitted(
    cli: TrainCli, fake_pacemaker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    images = cli.dataset.to_atoms()
    free_pt = _labelled(Atoms("Pt", positions=[[5, 5, 5]], cell=[10, 10, 10], pbc=True), "Pt atom")
    images.append(free_pt)
    dataset = Dataset.from_atoms(images, source="with a free atom")

    assert cli.train(PACEMAKER_CONFIG, data=dataset) == EXIT_OK

    potential = Potential.load(cli.out)
    assert potential.reference_energies["Pt"] == pytest.approx(free_pt.get_potential_energy())
    assert potential.provenance.n_structures == len(cli.dataset)  # the atom was not fitted
    assert "free Pt atom" in caplog.text and "not fitted" in caplog.text


def test_a_structure_with_a_lone_atom_is_an_error_naming_it(cli: TrainCli) -> None:
    images = cli.dataset.to_atoms()
    images.append(_labelled(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 6.4]]), "far pair"))
    dataset = Dataset.from_atoms(images, source="data")

    assert cli.train(MOCK_CONFIG, data=dataset) == EXIT_BAD_INPUT

    error = cli.error_without_traceback()
    assert f"structure {len(images) - 1}" in error and "'far pair'" in error
    assert "data.extxyz" in error and "no neighbour within the cutoff of 5.0 Å" in error
    assert not cli.out.exists()


def test_lone_atom_structures_are_dropped_with_a_warning_when_asked(
    cli: TrainCli, caplog: pytest.LogCaptureFixture
) -> None:
    images = cli.dataset.to_atoms()
    images.append(_labelled(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 6.4]]), "far pair"))
    config = MOCK_CONFIG + "  structures_without_neighbours: drop\n"

    assert cli.train(config, data=Dataset.from_atoms(images)) == EXIT_OK

    assert Potential.load(cli.out).provenance.n_structures == len(cli.dataset)
    assert "left out of the fit" in caplog.text and "'far pair'" in caplog.text


def test_an_element_held_only_by_a_free_atom_is_not_claimed(
    cli: TrainCli, caplog: pytest.LogCaptureFixture
) -> None:
    from ase.build import bulk

    copper = [
        _labelled(bulk("Cu", "fcc", a=3.6 + 0.02 * k, cubic=True), f"Cu {k}") for k in range(10)
    ]
    platinum = _labelled(Atoms("Pt", positions=[[0, 0, 0]]), "Pt atom")

    assert cli.train(MOCK_CONFIG, data=Dataset.from_atoms([*copper, platinum])) == 0

    assert Potential.load(cli.out).elements == ("Cu",)
    assert "does not cover Pt" in caplog.text


def test_a_structure_pacemaker_left_out_fails_the_run(
    cli: TrainCli, fake_pacemaker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "drop_one")

    assert cli.train(PACEMAKER_CONFIG) == EXIT_TRAINING_FAILED

    error = cli.error_without_traceback()
    assert f"pacemaker fitted {len(cli.dataset) - 1} structures" in error
    assert not (cli.out / "potential.json").exists()


# -- 3. and 4. no orphan after kill -9; one run per directory -------------------------------------


def _start_sleeping_run(cli: TrainCli) -> tuple[subprocess.Popen[str], int]:
    """The CLI in its own process, training into ``cli.out`` with a fake pacemaker that sleeps;
    and the fake pacemaker's PID."""
    out = cli.out
    environment = os.environ | {"FAKE_PACEMAKER_MODE": "sleep"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlip_autopipec.cli", *cli.arguments(PACEMAKER_CONFIG, out)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interrupt_as_from_a_terminal,
    )
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        log = out / "pacemaker.log"
        text = log.read_text() if log.exists() else ""
        if "read " in text and "pid " in text:
            return process, int(text.split("pid ")[1].split()[0])
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the fake pacemaker did not start")


def _gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its reaper counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
@pytest.mark.usefixtures("fake_pacemaker")
def test_kill_9_of_the_cli_leaves_no_pacemaker_and_the_next_run_says_so(
    cli: TrainCli, caplog: pytest.LogCaptureFixture
) -> None:
    out = cli.out
    process, pacemaker_pid = _start_sleeping_run(cli)

    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + PATIENCE_S
    while not _gone(pacemaker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pacemaker_pid), "pacemaker outlived the killed CLI"

    assert json.loads((out / MANIFEST).read_text())["status"] == "running"
    assert cli.train(PACEMAKER_CONFIG) == EXIT_OK
    assert "was killed before it finished" in caplog.text
    assert json.loads((out / MANIFEST).read_text())["status"] == "finished"


@pytest.mark.usefixtures("fake_pacemaker")
def test_a_second_run_into_a_busy_directory_exits_2_naming_the_first(cli: TrainCli) -> None:
    out = cli.out
    process, _ = _start_sleeping_run(cli)
    try:
        before = _checksums(out)
        code = cli.train(PACEMAKER_CONFIG)
        assert code == EXIT_BAD_INPUT
        error = cli.error_without_traceback()
        assert f"in use by another run (PID {process.pid}" in error and "started" in error
        unchanged = {k: v for k, v in _checksums(out).items() if k != "pacemaker.log"}
        assert unchanged == {k: v for k, v in before.items() if k != "pacemaker.log"}
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=PATIENCE_S)
    # Ctrl-C: one line and exit 130, as a shell expects.
    assert process.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert json.loads((out / MANIFEST).read_text())["status"] == "interrupted"


# -- 5. no pickle from outside is ever loaded -----------------------------------------------------


class _Planted:
    """Unpickling this creates a file: the proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.mark.requires_pacemaker
@pytest.mark.usefixtures("fake_pacemaker")
def test_no_command_loads_a_planted_pickle(cli: TrainCli, tmp_path: Path) -> None:
    run = cli.out
    assert cli.train(PACEMAKER_CONFIG) == EXIT_OK
    marker = tmp_path / "pickle_was_loaded"
    planted = gzip.compress(pickle.dumps(_Planted(marker)))
    for name in (
        "train_pred.pckl.gzip",
        "test_pred.pckl.gzip",
        "training_data.pckl.gzip",
        "fitting_data_info.pckl.gzip",
        "test_data_info.pckl.gzip",
    ):
        (run / name).write_bytes(planted)
    evil_data = tmp_path / "data.pckl.gzip"
    evil_data.write_bytes(planted)
    data = tmp_path / "data.extxyz"

    assert main(["report", str(run)]) == EXIT_OK
    assert main(["dimers", str(run)]) == EXIT_OK
    assert main(["gamma", str(run), str(data)]) == EXIT_OK
    Potential.load(run)
    assert main(["gamma", str(run), str(evil_data)]) == EXIT_BAD_INPUT
    assert "--trust-pickle" in cli.error()
    config = str(tmp_path / "config.yaml")
    train_evil = [
        "train",
        "--config",
        config,
        "--data",
        str(evil_data),
        "--out",
        str(tmp_path / "r2"),
    ]
    assert main(train_evil) == EXIT_BAD_INPUT

    assert not marker.exists()
    # dimers --png never writes over a file it did not make.
    before = _checksums(tmp_path)
    assert main(["dimers", str(run), "--png", str(data)]) == EXIT_BAD_INPUT
    assert _checksums(tmp_path) == before
    # The report's numbers come from the safe copies the trainer made.
    metrics = json.loads((run / "report" / "mlip_autopipec" / "metrics.json").read_text())
    assert metrics["train"]["energy_rmse_mev_per_atom"] == pytest.approx(2.0)
    assert metrics["train_source"] == "train_predictions.npz"


def test_trust_pickle_reads_pacemaker_data(cli: TrainCli) -> None:
    from mlip_autopipec.infrastructure.pacemaker.data_file import (
        dataset_to_dataframe,
        write_data_file,
    )

    arguments = cli.config_and_data(MOCK_CONFIG)
    data = cli.tmp_path / "mine.pckl.gzip"
    write_data_file(dataset_to_dataframe(cli.dataset), data)
    arguments[3] = str(data)
    command = ["train", *arguments, "--out", str(cli.out)]

    assert main(command) == EXIT_BAD_INPUT
    assert main([*command, "--trust-pickle"]) == EXIT_OK
    assert Potential.load(cli.out).provenance.n_structures == len(cli.dataset)


# -- 6. settings that validate are settings that work ---------------------------------------------


@pytest.mark.parametrize(
    ("cutoff", "message"),
    [("50", "typical values are 5 to 7 Å"), (".inf", "not physical"), ("true", "not true/false")],
)
def test_unphysical_cutoffs_are_refused(cli: TrainCli, cutoff: str, message: str) -> None:
    config = f"trainer:\n  type: pacemaker\n  cutoff: {cutoff}\n"
    assert cli.train(config) == EXIT_BAD_INPUT
    error = cli.error_without_traceback()
    assert "trainer.cutoff" in error and message in error


@pytest.mark.requires_pacemaker
@pytest.mark.usefixtures("fake_pacemaker")
def test_a_fraction_of_one_uses_every_structure_without_selection(
    cli: TrainCli, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = PACEMAKER_CONFIG + "  active_set: {enabled: true, fraction: 1.0}\n"

    assert cli.train(config) == EXIT_OK

    assert "all are used, nothing is selected" in caplog.text
    assert not (cli.out / "selection").exists()
    assert Potential.load(cli.out).selection is None


@pytest.mark.usefixtures("fake_pacemaker")
def test_one_structure_with_a_test_split_is_a_clear_error_before_pacemaker(cli: TrainCli) -> None:
    assert cli.train(PACEMAKER_CONFIG, data=cli.dataset[:1]) == EXIT_BAD_INPUT
    error = cli.error_without_traceback()
    assert "trainer.fit.test_size" in error and "fit.test_size: 0" in error
    assert not (cli.out / "pacemaker.log").exists()


# -- 7. no traceback reaches a user ---------------------------------------------------------------


def test_a_non_numeric_weight_names_the_structure(cli: TrainCli) -> None:
    images = cli.dataset.to_atoms()
    images[2].info["energy_weight"] = "heavy"
    command = cli.arguments(MOCK_CONFIG, data=images, data_name="weights.extxyz")

    assert main([*command, "--out", str(cli.out)]) == EXIT_BAD_INPUT

    error = cli.error_without_traceback()
    assert "structure 2" in error and "energy_weight is not a number: 'heavy'" in error


@pytest.mark.parametrize("kind", ["directory", "binary"])
def test_a_config_that_is_no_text_file_is_one_line(cli: TrainCli, kind: str) -> None:
    arguments = cli.config_and_data(PACEMAKER_CONFIG)
    config = cli.tmp_path / "bad_config"
    if kind == "directory":
        config.mkdir()
    else:
        config.write_bytes(bytes(range(256)))
    arguments[1] = str(config)

    assert main(["train", *arguments, "--out", str(cli.out)]) == EXIT_BAD_INPUT

    error = cli.error_without_traceback()
    assert str(config) in error and ("directory" in error or "not a text file" in error)


@pytest.mark.usefixtures("fake_pacemaker")
def test_an_unreadable_potential_from_pacemaker_fails_the_fit_in_one_message(
    cli: TrainCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "bad_yaml")
    assert cli.train(PACEMAKER_CONFIG) == EXIT_TRAINING_FAILED
    assert "unreadable output_potential.yaml" in cli.error_without_traceback()


@pytest.mark.usefixtures("fake_pacemaker")
def test_gamma_without_an_active_set_or_on_unknown_elements_is_exit_2(
    cli: TrainCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gold = tmp_path / "gold.extxyz"
    write(gold, [_labelled(Atoms("Au2", positions=[[0, 0, 0], [0, 0, 2.5]]), "gold")])
    fitted = tmp_path / "fitted"
    assert cli.train(PACEMAKER_CONFIG, out=fitted) == EXIT_OK
    monkeypatch.setenv("FAKE_PACEMAKER_MODE", "activeset_fail")
    no_active_set = tmp_path / "no_active_set"
    assert cli.train(PACEMAKER_CONFIG, out=no_active_set) == EXIT_OK
    mock = tmp_path / "mock"
    assert cli.train(MOCK_CONFIG, out=mock) == EXIT_OK
    cli.capsys.readouterr()
    data = str(tmp_path / "data.extxyz")

    assert main(["gamma", str(no_active_set), data]) == EXIT_BAD_INPUT
    assert "has no active set" in cli.error_without_traceback()
    assert main(["gamma", str(mock), data]) == EXIT_BAD_INPUT
    assert "mock" in cli.error_without_traceback()
    assert main(["gamma", str(fitted), str(gold)]) == EXIT_BAD_INPUT
    error = cli.error_without_traceback()
    assert "structure 0 'gold'" in error and "['Au']" in error


def test_an_unforeseen_error_is_one_line_and_verbose_shows_the_traceback(
    cli: TrainCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr("mlip_autopipec.cli.training.train", broken)
    arguments = [*cli.config_and_data(MOCK_CONFIG), "--out", str(cli.out)]

    assert main(["train", *arguments]) == EXIT_TRAINING_FAILED
    error = cli.error_without_traceback()
    assert error.strip() == (
        "error: RuntimeError: something unforeseen (run with --verbose for the traceback)"
    )
    assert main(["--verbose", "train", *arguments]) == EXIT_TRAINING_FAILED
    assert "Traceback" in cli.error()


# -- 8. gamma: "extrapolates" means above the active set's tolerance ------------------------------


def test_gamma_at_one_up_to_rounding_does_not_extrapolate() -> None:
    grades = [
        StructureGrade(index=0, name="training", n_atoms=4, max_gamma=1 + 1e-14, worst_atom=0),
        StructureGrade(index=1, name="new", n_atoms=4, max_gamma=1.5, worst_atom=2),
    ]
    table = format_grades(grades, threshold=1.01).splitlines()
    assert "extrapolates" not in table[1] and "extrapolates" in table[2]
    assert table[-1] == "1 of 2 structures have gamma > 1.01"


@pytest.mark.requires_pacemaker
@pytest.mark.usefixtures("fake_pacemaker")
def test_the_gamma_command_uses_the_potentials_tolerance(cli: TrainCli) -> None:
    config = PACEMAKER_CONFIG + "  active_set: {gamma_tolerance: 1000.0}\n"
    assert cli.train(config) == EXIT_OK
    cli.capsys.readouterr()

    assert main(["gamma", str(cli.out), str(cli.tmp_path / "data.extxyz")]) == EXIT_OK

    printed = cli.printed()
    assert f"0 of {len(cli.dataset)} structures have gamma > 1000" in printed
    assert np.isfinite(Potential.load(cli.out).gamma_tolerance)


def test_report_writes_nothing_into_a_directory_that_is_no_run(
    cli: TrainCli, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    before = _checksums(tmp_path)
    assert main(["report", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "not a run directory of mlip-autopipec" in cli.error_without_traceback()
    assert _checksums(tmp_path) == before and not (tmp_path / "report").exists()


def test_copies_within_the_data_stay_out_of_the_test_set(
    cli: TrainCli, fake_pacemaker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mlip_autopipec.domain_models.lineage import same_structure

    # Structure 0 four times, 1 to 3 twice: a random split would put twins on both sides.
    data = cli.dataset.subset([*range(len(cli.dataset)), 0, 0, 0, 1, 2, 3])
    config = PACEMAKER_CONFIG + "  fit:\n    test_size: 0.3\n"
    out = cli.out
    with caplog.at_level(logging.WARNING):
        assert cli.train(config, data=data) == EXIT_OK
    assert "6 structure(s) of the data are identical to another one (4 group(s))" in caplog.text
    training = Dataset.read(out / "training_set.extxyz")
    test = Dataset.read(out / "test_set.extxyz")
    assert len(training) + len(test) == len(data) and len(test) > 0
    assert not any(same_structure(t, s) for t in test for s in training)


def test_a_full_disk_names_the_file_and_marks_the_run_failed(
    cli: TrainCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from mlip_autopipec.infrastructure.rundir.claim import read_manifest

    out = cli.out
    real_write_text = Path.write_text
    full: list[bool] = []

    def write_text(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        # The disk fills up when potential.json is written: no file can be created after.
        if self.name.startswith(".potential.json.") or (full and self.parent == out):
            full.append(True)
            raise OSError(errno.ENOSPC, "No space left on device")  # as write() does: no name
        return real_write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    assert cli.train(MOCK_CONFIG) == EXIT_TRAINING_FAILED
    error = cli.error_without_traceback()
    assert "No space left on device" in error and str(out / "potential.json") in error
    assert full and not (out / "potential.json").exists()
    manifest = read_manifest(out)
    assert manifest is not None and manifest["status"] == "failed"
