"""ACE alone against ACE fitted as a correction to ZBL or Lennard-Jones: accuracy and short range.

Usage: python benchmarks/delta_learning.py [--functions 40] [--maxiter 40] [--only emt]

For each dataset (../shared/data/Cu-II.extxyz, DFT; the built-in EMT Cu-Pt set) and each
baseline (none, zbl with cutoffs from the data, lj), one fit with the same basis and iterations.
Prints the test RMSEs, the force-RMSE cost of each baseline relative to none, and E(r) of every
isolated dimer at 0.6, 1.0 and 1.5 Å with whether it rises monotonically below the data.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from mlip_autopipec.config.config_model import ZBLBaseline, parse_trainer_config
from mlip_autopipec.demo import demo_dataset
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.trainer import create_trainer

REPO = Path(__file__).resolve().parent.parent

#: Lennard-Jones parameters of Cu and Pt (Halicioglu and Pound, 1975): eV and Å.
LJ_EPSILON = {"Cu": 0.4093, "Pt": 0.6817}
LJ_SIGMA = {"Cu": 2.338, "Pt": 2.542}


def baselines(elements: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {
        "none": {"type": "none"},
        "zbl": {"type": "zbl"},
        "lj": {
            "type": "lj",
            "epsilon": {e: LJ_EPSILON[e] for e in elements},
            "sigma": {e: LJ_SIGMA[e] for e in elements},
            "cutoff": 5.0,
        },
        # A weak LJ whose wall lies below the data.
        "lj_soft": {
            "type": "lj",
            "epsilon": dict.fromkeys(elements, 0.05),
            "sigma": dict.fromkeys(elements, 1.4),
            "cutoff": 5.0,
        },
    }


def fit(dataset: Dataset, b_ref: dict[str, Any], args: argparse.Namespace, out: Path) -> Potential:
    config = parse_trainer_config(
        {
            "type": "pacemaker",
            "cutoff": args.cutoff,
            "b_ref": b_ref,
            "ace_params": {"number_of_functions_per_element": args.functions},
            "fit": {"maxiter": args.maxiter, "test_size": 0.1, "seed": 42},
        }
    )
    return create_trainer(config).train(dataset, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/Cu-II.extxyz")
    parser.add_argument("--functions", type=int, default=40)
    parser.add_argument("--maxiter", type=int, default=40)
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--only", choices=["dft", "emt"], default=None)
    parser.add_argument("--baselines", nargs="*", default=None, help="default: all")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="delta_learning_"))

    datasets = {}
    if args.only in (None, "dft"):
        datasets["Cu-II (DFT)"] = Dataset.read(args.data)
    if args.only in (None, "emt"):
        datasets["Cu-Pt (EMT)"] = demo_dataset()

    print(
        f"basis: {args.functions} functions/element, maxiter {args.maxiter}, cutoff {args.cutoff} Å"
    )
    for label, dataset in datasets.items():
        print(f"\n== {label}: {len(dataset)} structures, {dataset.n_atoms} atoms")
        results: dict[str, Potential] = {}
        chosen = baselines(dataset.elements)
        if args.baselines:
            chosen = {name: chosen[name] for name in ["none", *args.baselines] if name in chosen}
        for name, b_ref in chosen.items():
            started = time.perf_counter()
            out = workdir / f"{label.split()[0]}_{name}"
            potential = fit(dataset, b_ref, args, out)
            results[name] = potential
            metrics = potential.test_metrics
            assert metrics is not None
            cost = (
                metrics.force_rmse_mev_per_angstrom
                / results["none"].test_metrics.force_rmse_mev_per_angstrom  # type: ignore[union-attr]
            )
            print(
                f"b_ref {name:>7}: test energy RMSE "
                f"{metrics.energy_rmse_mev_per_atom:7.2f} meV/atom, force RMSE "
                f"{metrics.force_rmse_mev_per_angstrom:7.2f} meV/Å "
                f"({cost:.2f} x none), {time.perf_counter() - started:5.0f} s  {out}"
            )
            if isinstance(potential.baseline, ZBLBaseline):
                cutoffs = potential.baseline.pair_cutoffs.items()
                print(
                    "           zbl cutoffs from the data (inner/outer Å): "
                    + ", ".join(f"{pair} {inner}/{outer}" for pair, (inner, outer) in cutoffs)
                )
            for check in potential.dimer_checks:
                energies = ", ".join(
                    f"E({r} Å) = {check.energies_ev[r]:9.3g} eV" for r in ("0.6", "1", "1.5")
                )
                verdict = (
                    "monotonic below the data"
                    if check.repulsive_below_data
                    else f"NOT monotonic (at {check.first_violation_distance:.2f} Å)"
                )
                print(f"           {'-'.join(check.pair)}: {energies}; {verdict}")


if __name__ == "__main__":
    main()
