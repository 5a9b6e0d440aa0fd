"""Wall time and peak memory of preparing large datasets: `mlip-autopipec train` with `type: mock`.

Usage: python benchmarks/data_scale.py --sizes 2000 20000 [100000] [--sets cu five]

The data are rattled fcc cells of 32 atoms labelled with ASE's EMT: pure Cu ("cu"), and random
Cu/Ag/Au/Ni/Pd alloys ("five"). Labelling is slow (EMT is pure Python, ~30 s per 1,000
structures on a quiet core), so the structures are made once, in chunks of 1,000, into a cache
directory outside the repository (``--cache``, default /tmp/mlip_autopipec_data_scale); a size
reuses the chunks of smaller ones. Only the first ``--labelled-chunks`` chunks are labelled by
EMT; a later chunk is a copy of one of them with every structure translated by a random vector
(labels exactly unchanged, positions and hashes new), which leaves the preparation's work the
same as for fresh structures.

Each measurement runs the CLI in a child process and reports its wall time and peak resident
memory (the child's own ``ru_maxrss``). Besides ``train`` on each size, the preparation of a
next generation is measured: 1,000 new structures added to the 20,000 of a mock run
(``--generation-parent``), with the parent's cached neighbour results (a mock potential cannot
be a real parent, so the generation's preparation is run in Python: accumulate, account for
the structures, plan the data, write pacemaker's inputs). With ``--pacemaker-log`` the time
pacemaker spends on its own neighbour lists is read from that log of a real fit on the data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHUNK = 1000
ATOMS = 32
FIVE = ("Ag", "Au", "Cu", "Ni", "Pd")
#: Å; lattice constants of the fcc cells (EMT's own minima, near experiment).
LATTICE = {"Cu": 3.61, "Ag": 4.09, "Au": 4.08, "Ni": 3.52, "Pd": 3.89}


def make_chunk(kind: str, chunk: int, path: Path) -> None:
    """1,000 rattled, EMT-labelled 32-atom fcc cells (seeded by the chunk number)."""
    import ase.io
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(1000 + chunk + (0 if kind == "cu" else 10**6))
    images = []
    for number in range(CHUNK):
        if kind == "cu":
            symbols = ["Cu"] * ATOMS
            lattice = LATTICE["Cu"]
        else:
            symbols = list(rng.choice(FIVE, size=ATOMS))
            lattice = float(np.mean([LATTICE[s] for s in symbols]))
        atoms = bulk("Cu", "fcc", a=lattice * rng.uniform(0.97, 1.04), cubic=True).repeat(2)
        atoms.set_chemical_symbols(symbols)
        atoms.positions += rng.normal(0.0, 0.08, size=atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        atoms.info["name"] = f"{kind}/{chunk * CHUNK + number}"
        images.append(atoms)
    temporary = path.with_suffix(".part")
    ase.io.write(temporary, images, format="extxyz")
    temporary.replace(path)


def translated_chunk(source: Path, chunk: int, path: Path) -> None:
    """The structures of ``source``, each moved by a random vector (seeded by ``chunk``)."""
    import ase.io

    rng = np.random.default_rng(chunk)
    images = ase.io.read(source, index=":")
    for number, atoms in enumerate(images):
        atoms.positions += rng.uniform(-2.0, 2.0, 3)
        atoms.info["name"] = f"{atoms.info['name'].split('/')[0]}/{chunk * CHUNK + number}"
    temporary = path.with_suffix(".part")
    ase.io.write(temporary, images, format="extxyz")
    temporary.replace(path)


def chunk_file(kind: str, chunk: int, cache: Path, labelled_chunks: int) -> Path:
    """The cached file of one chunk, made if missing (labelled, or a translated copy)."""
    path = cache / f"{kind}_chunk{chunk:04d}.extxyz"
    if not path.exists():
        started = time.perf_counter()
        if chunk < labelled_chunks:
            make_chunk(kind, chunk, path)
        else:
            source = chunk_file(kind, chunk % labelled_chunks, cache, labelled_chunks)
            translated_chunk(source, chunk, path)
        print(f"  made {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def dataset_file(
    kind: str, size: int, cache: Path, first_chunk: int = 0, labelled_chunks: int = 5
) -> Path:
    """The extxyz file of ``size`` structures (made from cached chunks, generated if missing)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{kind}_{first_chunk}_{size}.extxyz"
    if path.exists():
        return path
    chunks = [
        chunk_file(kind, chunk, cache, labelled_chunks)
        for chunk in range(first_chunk, first_chunk + -(-size // CHUNK))
    ]
    temporary = path.with_suffix(".part")
    with temporary.open("w") as out:
        for chunk_path in chunks:
            out.write(chunk_path.read_text())
    temporary.replace(path)
    return path


def measured(command: list[str]) -> tuple[float, float, float]:
    """Wall time (s), CPU time (user + system, s) and peak resident memory (GiB) of
    ``command`` run in a child process.

    The child is started by a fresh Python process that waits for it alone, so
    RUSAGE_CHILDREN holds that child's figures and nothing else's. On a busy machine the CPU
    time is the better guide to the wall time on a quiet one."""
    probe = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "code = subprocess.run(sys.argv[1:]).returncode\n"
        "wall = time.perf_counter() - t\n"
        "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "cpu = usage.ru_utime + usage.ru_stime\n"
        "print(json.dumps([code, wall, cpu, usage.ru_maxrss]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *command], capture_output=True, text=True, check=False
    )
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"{command} gave no measurement:\n{result.stderr[-2000:]}")
    code, wall, cpu, peak_kib = json.loads(lines[-1])
    if code != 0:
        raise SystemExit(f"{command} failed with exit code {code}:\n{result.stderr[-3000:]}")
    return float(wall), float(cpu), float(peak_kib) / 2**20


def config_file(workdir: Path, cutoff: float) -> Path:
    import yaml

    config = workdir / "config.yaml"
    trainer = {"type": "mock", "cutoff": cutoff, "fit": {"test_size": 0.1, "seed": 42}}
    config.write_text(yaml.safe_dump({"trainer": trainer}))
    return config


def train_command(config: Path, data: Path, out: Path) -> list[str]:
    cli = Path(sys.executable).parent / "mlip-autopipec"
    command = [str(cli), "--quiet", "train", "--config", str(config)]
    return [*command, "--data", str(data), "--out", str(out)]


GENERATION_SCRIPT = """
import sys
from pathlib import Path
import yaml
from mlip_autopipec.cli.common import read_data
from mlip_autopipec.config.config_model import parse_trainer_config
from mlip_autopipec.domain_models.neighbours import NEIGHBOURS_FILE, NeighbourTable
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.rundir.claim import claim_run_directory
from mlip_autopipec.infrastructure.rundir.files import REPLACED, TEST_SET
from mlip_autopipec.infrastructure.trainer.generations.generation import (
    next_generation,
    plan_generation,
)
from mlip_autopipec.infrastructure.trainer.pacemaker_trainer import PacemakerTrainer
from mlip_autopipec.infrastructure.trainer.plan import write_inputs

config_path, parent, new_data, out = (Path(a) for a in sys.argv[1:5])
trainer_section = yaml.safe_load(config_path.read_text())["trainer"]
config = parse_trainer_config({**trainer_section, "type": "pacemaker"})
# The mock parent as a pacemaker run: its record names a potential holding its elements.
mock = Potential.load(parent)
stub = parent / "parent_stub.yaml"
stub.write_text(yaml.safe_dump({"species": [{"speciesblock": e} for e in mock.elements]}))
previous = mock.model_copy(update={"trainer": "pacemaker", "yaml_file": stub.name})
trainer = PacemakerTrainer(config)
# As `train --previous` does: the new data read as the CLI reads them, the parent's data and
# neighbour searches (PacemakerTrainer.train), then the preparation of PacemakerTrainer.prepare
# without its cost estimate (a pacemaker probe) and selection.
added = read_data(new_data, False, config.cutoff)
known = NeighbourTable.load(parent / NEIGHBOURS_FILE, config.cutoff)
if known is None:
    raise SystemExit("the parent run has no neighbour cache")
generation = next_generation(config, added, previous, None, known)
child = trainer.with_config(generation.config)
child.neighbours.update(known)
accounted = child.account_for_structures(generation.accumulated.training)
test = generation.accumulated.test
plan, generation = plan_generation(
    generation,
    accounted.fit,
    free_atom_energies=accounted.free_atom_energies,
    fitting=test is None,
    neighbours=child.neighbours,
)
with claim_run_directory(out, replaces=REPLACED) as run:
    write_inputs(accounted.fit, run.path, plan, test)
    if test is not None:
        test.write(run.path / TEST_SET)
"""


def pacemaker_neighbour_seconds(log: Path) -> float | None:
    """Seconds pacemaker reports for building its neighbour lists, from its log."""
    import re

    for line in log.read_text(errors="replace").splitlines():
        match = re.search(r"[Nn]eighbour.*?(\d+(?:\.\d+)?)\s*(?:s|sec)", line)
        if match and "construct" in line.lower():
            return float(match.group(1))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--sets", nargs="+", choices=("cu", "five"), default=["cu", "five"])
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/mlip_autopipec_data_scale"))
    parser.add_argument(
        "--generation-parent",
        type=int,
        default=20000,
        help="structures of the parent of the generation measurement (0: none)",
    )
    parser.add_argument("--pacemaker-log", type=Path, default=None)
    parser.add_argument(
        "--labelled-chunks",
        type=int,
        default=5,
        help="chunks of 1,000 labelled by EMT; later chunks are translated copies of them",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the run directories (hundreds of MB at 100,000 structures); removed otherwise",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="data_scale_"))
    try:
        run(args, workdir)
    finally:
        if args.keep:
            print(f"run directories: {workdir}")
        else:
            shutil.rmtree(workdir)


def run(args: argparse.Namespace, workdir: Path) -> None:
    """The timed runs in ``workdir`` (made by this script), and the table of their figures."""
    config = config_file(workdir, args.cutoff)
    rows: list[tuple[str, str, float, float, float]] = []
    for kind in args.sets:
        for size in args.sizes:
            data = dataset_file(kind, size, args.cache, 0, args.labelled_chunks)
            out = workdir / f"{kind}_{size}"
            wall, cpu, peak = measured(train_command(config, data, out))
            rows.append((kind, f"train {size}", wall, cpu, peak))
            print(f"{kind:5s} train {size:>7d}: {wall:7.1f} s {peak:6.2f} GiB", flush=True)
        parent_size = args.generation_parent
        if parent_size:
            parent = workdir / f"{kind}_{parent_size}"
            if not parent.exists():
                data = dataset_file(kind, parent_size, args.cache, 0, args.labelled_chunks)
                measured(train_command(config, data, parent))
            # New structures: the chunk after the parent's.
            first_new = -(-parent_size // CHUNK)
            added = dataset_file(kind, CHUNK, args.cache, first_new, args.labelled_chunks)
            script = workdir / "generation.py"
            script.write_text(GENERATION_SCRIPT)
            out = workdir / f"{kind}_{parent_size}_plus_{CHUNK}"
            command = [sys.executable, str(script), str(config), str(parent), str(added), str(out)]
            wall, cpu, peak = measured(command)
            label = f"generation {parent_size}+{CHUNK}"
            rows.append((kind, label, wall, cpu, peak))
            print(f"{kind:5s} {label}: {wall:7.1f} s {peak:6.2f} GiB", flush=True)

    load = os.getloadavg()
    print(f"\n{ATOMS} atoms per structure, cutoff {args.cutoff} Å, load {load[0]:.2f}")
    print(f"{'data':6s} {'run':24s} {'wall (s)':>9s} {'CPU (s)':>8s} {'peak (GiB)':>11s}")
    for kind, label, wall, cpu, peak in rows:
        print(f"{kind:6s} {label:24s} {wall:9.1f} {cpu:8.1f} {peak:11.2f}")
    if args.pacemaker_log is not None:
        seconds = pacemaker_neighbour_seconds(args.pacemaker_log)
        print(f"pacemaker's own neighbour lists ({args.pacemaker_log}): {seconds} s")


if __name__ == "__main__":
    main()
