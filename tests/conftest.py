"""Shared fixtures: small EMT-labelled datasets, fake pacemaker programs on PATH and one real
pacemaker fit that the slow tests share."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.cli import main
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential, Provenance
from mlip_autopipec.oracle.emt import label_with_emt

#: Small real files: a tiny Cu-Pt potential as pacemaker and pace_yaml2yace write it.
TEST_DATA = Path(__file__).parent / "data"
#: A real pacemaker.log (maxiter 300, display_step 10, Cu-Pt), trimmed (see its tests).
PACEMAKER_PROGRESS_LOG = TEST_DATA / "pacemaker_progress.log"
#: One iteration record of pacemaker's log, as pyace's MetricsAggregator writes it.
ITERATION_1 = (
    "2026-11-29 02:13:05,048 - pyace.metrics_aggregator - INFO - Iteration   #1    (3 evals):"
    "        Loss: 1.1919e+00 | RMSE Energy(low): 597.61 (509.15) meV/at | Forces(low): 1023.03"
    " (1016.71) meV/A | Time/eval: 116.20 mcs/at"
)
#: The input.yaml the fake pacemaker expects in each test scenario (``expect_pacemaker_input``).
REFERENCE_INPUTS = TEST_DATA / "fake_pacemaker_inputs"


def pacemaker_missing() -> str | None:
    """Why the ``pacemaker`` extra is unusable here (pyace or its programs missing), or None."""
    if importlib.util.find_spec("pyace") is None:
        return "pyace (python-ace) is not installed"
    beside_python = str(Path(sys.executable).parent)
    for program in ("pacemaker", "pace_select", "pace_activeset", "pace_yaml2yace"):
        if shutil.which(program) is None and shutil.which(program, path=beside_python) is None:
            return f"the program {program} is not installed"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``requires_pacemaker`` skip, with the reason, where the pacemaker extra is
    missing (the spec's "pacemaker is not installed" scenario: ``make test-nopace``); with
    MLIP_REQUIRE_PACEMAKER=1 (CI's full suite) they run, and fail, instead."""
    reason = pacemaker_missing()
    if reason is None or os.environ.get("MLIP_REQUIRE_PACEMAKER") == "1":
        return
    skip = pytest.mark.skip(reason=f"needs the pacemaker extra: {reason}")
    for item in items:
        if "requires_pacemaker" in item.keywords:
            item.add_marker(skip)


def interrupt_as_from_a_terminal() -> None:
    """``preexec_fn`` of a CLI the test interrupts: Ctrl-C (SIGINT) reaches it as from a
    terminal, also where the test session runs in the background, whose children inherit
    SIGINT ignored (and Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cu_pt_structures(count: int = 12, seed: int = 0) -> list[Atoms]:
    """Small rattled, strained fcc Cu-Pt cells (8 atoms) plus a Cu-Pt dimer."""
    rng = np.random.default_rng(seed)
    structures = []
    for index in range(count):
        atoms = bulk("Cu", "fcc", a=3.7 * (1 + rng.uniform(-0.04, 0.04)), cubic=True)
        atoms = atoms.repeat((2, 1, 1))
        atoms.symbols[rng.choice(len(atoms), size=index % 5, replace=False)] = "Pt"
        atoms.rattle(0.08, seed=index)
        atoms.info["name"] = f"alloy_{index}"
        structures.append(atoms)
    structures.append(Atoms("CuPt", positions=[[0, 0, 0], [0, 0, 2.3]]))
    structures[-1].info["name"] = "dimer"
    return structures


def rattled_copper(count: int) -> list[Atoms]:
    """Cubic 4-atom fcc Cu cells (a = 3.6 Å) rattled by 0.05 Å with seeds 0 to count - 1."""
    structures = []
    for seed in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=seed)
        structures.append(atoms)
    return structures


#: A child process that labels ``rattled_copper(COUNT)`` (the loop written out: the child cannot
#: import the tests) with ``FUNCTION(structures, config, cache)``; its arguments: the oracle
#: config's JSON file, the cache directory, COUNT and FUNCTION ("module:function").
LABEL_IN_A_CHILD = """
import importlib, sys
from pathlib import Path
from ase.build import bulk
from mlip_autopipec.config.oracle import OracleConfig
config_file, cache, count, function = sys.argv[1:]
module, name = function.split(":")
label = getattr(importlib.import_module(module), name)
structures = []
for seed in range(int(count)):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=seed)
    structures.append(atoms)
label(structures, OracleConfig.model_validate_json(Path(config_file).read_text()), Path(cache))
"""


def label_in_a_child(
    function: str, count: int, config_file: Path, cache: Path
) -> subprocess.Popen[bytes]:
    """Start ``LABEL_IN_A_CHILD``: ``function`` ("module:function") labels
    ``rattled_copper(count)`` with the oracle config in ``config_file`` into ``cache``. The
    child imports what this session imports (its ``sys.path``)."""
    arguments = [str(config_file), str(cache), str(count), function]
    return subprocess.Popen(
        [sys.executable, "-c", LABEL_IN_A_CHILD, *arguments],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def kill_9_once(child: subprocess.Popen[bytes], ready: Callable[[], bool], too_soon: str) -> None:
    """Wait until ``ready()`` (the child must still run meanwhile: else fail with ``too_soon``),
    then kill the child with SIGKILL, as ``kill -9`` does, and reap it."""
    while not ready():
        assert child.poll() is None, too_soon
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()


@pytest.fixture
def cu_pt_dataset() -> Dataset:
    return label_with_emt(cu_pt_structures(), source="test EMT")


@pytest.fixture
def tiny_cupt() -> Potential:
    """The record of tests/data's tiny Cu-Pt potential (.yace, .yaml and active set; cutoff 4.5
    Å). Its files are only read: a variant is ``tiny_cupt.model_copy(update={...})``."""
    return Potential(
        run_dir=TEST_DATA,
        trainer="pacemaker",
        yace_file="tiny_CuPt.yace",
        yaml_file="tiny_CuPt_output_potential.yaml",
        active_set_file="tiny_CuPt_output_potential.asi",
        elements=("Cu", "Pt"),
        cutoff=4.5,
        provenance=Provenance(data_sha256=None, config_sha256=None),
    )


def train_arguments(
    directory: Path,
    data: Dataset | Sequence[Atoms],
    config: Mapping[str, Any] | str,
    out: Path | None = None,
    *,
    data_name: str = "data.extxyz",
) -> list[str]:
    """The CLI's train arguments for ``data`` and ``config``, written into ``directory``.

    Writes ``data`` (a Dataset, or ASE structures as they are, e.g. with a NaN force) to
    ``directory/data_name`` as extended XYZ and ``config`` to ``directory/config.yaml`` (a
    mapping: the ``trainer`` section; a string: the whole YAML text); returns
    ``["train", "--config", CONFIG, "--data", DATA]``, then ``"--out", out`` when given.
    """
    data_file = directory / data_name
    if isinstance(data, Dataset):
        data.write(data_file)
    else:
        ase.io.write(data_file, list(data), format="extxyz")
    config_file = directory / "config.yaml"
    if isinstance(config, str):
        config_file.write_text(config)
    else:
        config_file.write_text(yaml.safe_dump({"trainer": dict(config)}))
    argv = ["train", "--config", str(config_file), "--data", str(data_file)]
    return argv if out is None else [*argv, "--out", str(out)]


@pytest.fixture
def train_argv(tmp_path: Path) -> Callable[..., list[str]]:
    """``train_arguments`` writing into the test's ``tmp_path``:
    ``train_argv(data, config, out=None, *, data_name="data.extxyz")``."""
    return functools.partial(train_arguments, tmp_path)


@dataclass(frozen=True)
class TrainCli:
    """The command line run in this process on files in the test's ``tmp_path``.

    ``arguments(config)`` writes the Cu-Pt data (``cu_pt_dataset``, or ``data``) and ``config``
    as ``train_arguments`` does; ``train(config, *options)`` runs them into the run directory
    ``out`` (or ``out=``) and returns ``main``'s exit code; ``error()`` and ``printed()`` are
    what the commands wrote to stderr and stdout since the last read.
    """

    tmp_path: Path
    dataset: Dataset
    capsys: pytest.CaptureFixture[str]

    @property
    def out(self) -> Path:
        """The default run directory, ``tmp_path/run`` (not made here)."""
        return self.tmp_path / "run"

    def arguments(
        self,
        config: Mapping[str, Any] | str,
        out: Path | None = None,
        *,
        data: Dataset | Sequence[Atoms] | None = None,
        data_name: str = "data.extxyz",
    ) -> list[str]:
        """``train_arguments`` in ``tmp_path``: ``["train", "--config", ..., "--data", ...]``,
        then ``"--out", out`` when given."""
        data = self.dataset if data is None else data
        return train_arguments(self.tmp_path, data, config, out, data_name=data_name)

    def config_and_data(
        self, config: Mapping[str, Any] | str, *, data: Dataset | Sequence[Atoms] | None = None
    ) -> list[str]:
        """``["--config", CONFIG, "--data", DATA]`` as ``arguments`` writes them: the input
        options of the commands other than train (select)."""
        return self.arguments(config, data=data)[1:]

    def train(
        self,
        config: Mapping[str, Any] | str,
        *options: str,
        out: Path | None = None,
        data: Dataset | Sequence[Atoms] | None = None,
    ) -> int:
        """``main`` of ``train ... --out OUT OPTIONS`` (OUT: ``out``, or the default run
        directory): the exit code."""
        argv = self.arguments(config, self.out if out is None else out, data=data)
        return main([*argv, *options])

    def error(self) -> str:
        """What was written to stderr since the last read."""
        return self.capsys.readouterr().err

    def printed(self) -> str:
        """What was written to stdout since the last read."""
        return self.capsys.readouterr().out

    def error_without_traceback(self) -> str:
        """stderr since the last read, once checked that neither stream shows a traceback."""
        captured = self.capsys.readouterr()
        assert "Traceback" not in captured.err + captured.out
        return captured.err


@pytest.fixture
def cli(tmp_path: Path, cu_pt_dataset: Dataset, capsys: pytest.CaptureFixture[str]) -> TrainCli:
    """The command line on ``cu_pt_dataset`` in the test's ``tmp_path`` (``TrainCli``)."""
    return TrainCli(tmp_path, cu_pt_dataset, capsys)


FAKE_PACEMAKER = '''
"""Fake pacemaker: checks the inputs the trainer wrote, then writes outputs like pacemaker's."""
import math, os, shutil, sys, time
import numpy as np, pandas as pd, yaml

mode = os.environ.get("FAKE_PACEMAKER_MODE", "ok")
print(f"fake pacemaker starting, pid {os.getpid()}", flush=True)
config = yaml.safe_load(open(sys.argv[1]))


def differences(expected, got, key):
    """Where ``got`` differs from the reference, key by key ("*": any value, numbers to 1e-9)."""
    if expected == "*":
        return []
    if isinstance(expected, dict) and isinstance(got, dict):
        found = [f"{key}{name}: expected nothing, got {got[name]!r}"
                 for name in got if name not in expected]
        for name, value in expected.items():
            if name not in got:
                found.append(f"{key}{name}: expected {value!r}, got nothing")
            else:
                found += differences(value, got[name], f"{key}{name}.")
        return found
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        return [d for k, (e, g) in enumerate(zip(expected, got))
                for d in differences(e, g, f"{key}[{k}].")]
    numbers = (int, float)
    if (isinstance(expected, numbers) and isinstance(got, numbers)
            and not isinstance(expected, bool) and not isinstance(got, bool)):
        if math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-12):
            return []
    elif expected == got and type(expected) is type(got):
        return []
    return [f"{key.rstrip('.')}: expected {expected!r}, got {got!r}"]


reference = os.environ.get("FAKE_PACEMAKER_REFERENCE")
if reference:  # the scenario's reference input.yaml, as atomate2's fakes check their inputs
    found = differences(yaml.safe_load(open(reference)), config, "")
    for line in found:
        print(f"{sys.argv[1]} differs from {os.path.basename(reference)}: {line}", flush=True)
    if found:
        sys.exit(4)
for section in ("potential", "data", "fit", "backend"):
    assert section in config, f"input.yaml lacks {section}"
frame = pd.read_pickle(config["data"]["filename"], compression="gzip")
assert {"ase_atoms", "energy", "forces", "energy_corrected"} <= set(frame.columns)
print(f"read {len(frame)} structures", flush=True)
if mode == "fail":
    for line in range(100):
        print(f"log line {line + 1}", flush=True)
    sys.exit(3)
if mode == "crash":
    print("about to crash", flush=True)
    raise RuntimeError("fake pacemaker crashed")
if mode == "sleep":
    time.sleep(120)
if mode == "no_output":
    sys.exit(0)
if config["fit"].get("callbacks"):  # a time budget: the deadline callback and its deadline
    assert config["fit"]["callbacks"] == [
        "mlip_autopipec.infrastructure.pacemaker.deadline.stop_at_deadline"
    ], config["fit"]["callbacks"]
    deadline = float(os.environ["MLIP_AUTOPIPEC_FIT_DEADLINE"])
    assert time.time() < deadline < time.time() + 7200, "the deadline is not within the budget"
    for n, second in ((1, "10,000"), (2, "10,500")):
        print(f"2026-01-01 00:00:{second} - pyace.metrics_aggregator - INFO - Iteration   #{n}"
              "    (1 evals):        Loss: 1.0e+00 | RMSE Energy(low): 1.00 (1.00) meV/at |"
              " Forces(low): 1.00 (1.00) meV/A | Time/eval: 1.00 mcs/at", flush=True)
    print("mlip-autopipec: time budget reached after iteration 1: stopping the fit", flush=True)
if mode == "early_stop":  # pacemaker's early stopping ends the fit after iteration 7
    for n in range(1, 8):
        print(f"2026-01-01 00:00:0{n},000 - pyace.metrics_aggregator - INFO - Iteration   #{n}"
              "    (1 evals):        Loss: 1.0e+00 | RMSE Energy(low): 1.00 (1.00) meV/at |"
              " Forces(low): 1.00 (1.00) meV/A | Time/eval: 1.00 mcs/at", flush=True)
    print("2026-01-01 00:00:09,000 - pyace.generalfit - INFO - EARLY STOPPING: Too small or even"
          " positive TEST loss change within last 10 iterations. Stopping", flush=True)
# A real (tiny, barely fitted) Cu-Pt potential stands in for the fit's result.
assert config["potential"]["elements"] == ["Cu", "Pt"], "the fake knows only Cu-Pt"
shutil.copy(os.environ["FAKE_PACEMAKER_DATA"] + "/tiny_CuPt_output_potential.yaml",
            "output_potential.yaml")
if mode == "bad_yaml":
    open("output_potential.yaml", "wb").write(b"species: [\\x00\\xff unclosed\\n")
if mode == "drop_one":  # as pacemaker does with a structure it cannot use
    frame = frame.iloc[1:]
# Predictions off by exactly 2 meV/atom in energy and 30 meV/A in every force component.
frame["NUMBER_OF_ATOMS"] = frame["ase_atoms"].map(len)
frame["energy_pred"] = frame["energy_corrected"] + 0.002 * frame["NUMBER_OF_ATOMS"]
frame["forces_pred"] = [forces + 0.03 for forces in frame["forces"]]
if "test_filename" in config["data"]:  # a fixed test set: no random split
    assert "test_size" not in config["data"], "test_size and test_filename together"
    test = pd.read_pickle(config["data"]["test_filename"], compression="gzip")
    test["NUMBER_OF_ATOMS"] = test["ase_atoms"].map(len)
    test["energy_pred"] = test["energy_corrected"] + 0.004 * test["NUMBER_OF_ATOMS"]
    test["forces_pred"] = [forces + 0.05 for forces in test["forces"]]
    train = frame
else:
    n_test = max(1, int(len(frame) * float(config["data"].get("test_size", 0.1))))
    train, test = frame.iloc[n_test:], frame.iloc[:n_test]
train.to_pickle("fitting_data_info.pckl.gzip", compression="gzip")
train.to_pickle("train_pred.pckl.gzip", compression="gzip")
test.to_pickle("test_pred.pckl.gzip", compression="gzip")
print("fake pacemaker done", flush=True)
'''

FAKE_YAML2YACE = '''
"""Fake pace_yaml2yace: checks its input is a potential, writes the reference .yace."""
import os, shutil, sys, yaml
source, output = sys.argv[1], sys.argv[sys.argv.index("-o") + 1]
assert "species" in yaml.safe_load(open(source)), f"{source} is not a B-basis potential"
shutil.copy(os.environ["FAKE_PACEMAKER_DATA"] + "/tiny_CuPt.yace", output)
if os.environ.get("FAKE_PACEMAKER_MODE") == "no_core":
    # An unsafe potential: ACE switched off below the data, with no core repulsion.
    text = open(output).read().replace("inner_cutoff_type: zbl", "inner_cutoff_type: distance")
    open(output, "w").write(text)
print(f"Saving Ctilde-basis to '{output}'")
'''


FAKE_ACTIVESET = '''
"""Fake pace_activeset: checks its inputs, writes the reference active set."""
import os, shutil, sys
assert sys.argv[1:3] == ["-d", "fitting_data_info.pckl.gzip"], sys.argv
assert os.path.exists(sys.argv[-1]), f"no potential {sys.argv[-1]}"
if os.environ.get("FAKE_PACEMAKER_MODE") == "activeset_fail":
    sys.exit("ValueError: Insufficient atomic environments to determine active set")
shutil.copy(os.environ["FAKE_PACEMAKER_DATA"] + "/tiny_CuPt_output_potential.asi",
            sys.argv[-1].replace(".yaml", ".asi"))
'''


def expect_pacemaker_input(monkeypatch: pytest.MonkeyPatch, scenario: str) -> Path:
    """Make the fake pacemaker compare its input.yaml, key by key, with the reference
    ``tests/data/fake_pacemaker_inputs/<scenario>.yaml`` and fail (exit 4) saying "expected X,
    got Y" for each difference; a reference value ``"*"`` accepts any value of its key."""
    reference = REFERENCE_INPUTS / f"{scenario}.yaml"
    assert reference.is_file(), f"no reference input {reference}"
    monkeypatch.setenv("FAKE_PACEMAKER_REFERENCE", str(reference))
    return reference


def write_executable(path: Path, body: str) -> Path:
    """Write a Python script run by this interpreter and make it executable."""
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake_pacemaker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake ``pacemaker`` and ``pace_yaml2yace`` first on PATH (FAKE_PACEMAKER_MODE: failures)."""
    bin_dir = tmp_path / "fake_bin"
    bin_dir.mkdir()
    write_executable(bin_dir / "pacemaker", FAKE_PACEMAKER)
    write_executable(bin_dir / "pace_yaml2yace", FAKE_YAML2YACE)
    write_executable(bin_dir / "pace_activeset", FAKE_ACTIVESET)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PACEMAKER_DATA", str(TEST_DATA))
    return bin_dir


#: The trainer section of the shared real fit (``tiny_fit``): 31 Cu-Pt structures, 12 functions
#: per element, 30 iterations, one thread (a batch job with one core repeats it exactly).
TINY_FIT_CONFIG: dict[str, Any] = {
    "type": "pacemaker",
    "cutoff": 4.5,
    "b_ref": {"type": "none"},
    "ace_params": {"number_of_functions_per_element": 12},
    "fit": {"maxiter": 30, "test_size": 0.2, "display_step": 10},
    "threads": 1,
}


@dataclass(frozen=True)
class TinyFit:
    """A finished real fit: its potential (``run_dir`` holds the run), the data and the config."""

    potential: Potential
    dataset: Dataset
    config: dict[str, Any]


@pytest.fixture(scope="session")
def tiny_fit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyFit]:
    """One real pacemaker fit of ``TINY_FIT_CONFIG`` on 30 rattled Cu-Pt cells and a dimer (seed
    1), shared by the slow tests: each pacemaker start-up costs ~35 s. Its run directory is
    read-only for the tests (checked at the end of the session): a test that changes a run
    works on a copy (``shutil.copytree``)."""
    from mlip_autopipec.config.config_model import parse_trainer_config
    from mlip_autopipec.infrastructure.trainer import create_trainer

    root = tmp_path_factory.mktemp("tiny_fit")
    labelled = label_with_emt(cu_pt_structures(count=30, seed=1), source="tiny EMT Cu-Pt")
    # As read back from a file, as run directories keep their data (positions to 1e-8 Å).
    dataset = Dataset.read(labelled.write(root / "data.extxyz"))
    potential = create_trainer(parse_trainer_config(TINY_FIT_CONFIG)).train(dataset, root / "run")
    before = _file_digests(root)
    yield TinyFit(potential, dataset, TINY_FIT_CONFIG)
    assert _file_digests(root) == before, f"a test changed the shared fit in {root}"


def _file_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory``, by relative path."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
