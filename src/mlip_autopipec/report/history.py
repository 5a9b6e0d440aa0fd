"""The history of a chain of generations: each generation's data, basis, cost and errors,
as a table and a plot (``mlip-autopipec history``)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, Potential, load_finished_run
from mlip_autopipec.errors import OutputError
from mlip_autopipec.infrastructure.rundir.records import data_sha256_now

log = logging.getLogger(__name__)

#: The plot of a chain of generations, in the run's report directory.
HISTORY_PNG = "history.png"
#: A chain longer than this is taken for a loop of parents.
MAX_GENERATIONS = 1000


def load_finished(run_dir: Path) -> Potential:
    """The potential of a finished run (NotAFinishedRun otherwise), without the warnings of
    a failed or interim one: the history shows them."""
    with warnings.catch_warnings():  # the gate's verdict is shown in the history
        warnings.simplefilter("ignore", UserWarning)
        return load_finished_run(run_dir)


@dataclass(frozen=True)
class GenerationRow:
    """One generation of a chain, as ``history`` shows it."""

    generation: int
    run_dir: Path
    structures: int | None  # training structures (pacemaker's train set)
    test_structures: int | None
    basis: int | None
    fitted_from: str
    iterations: int | None
    wall_s: float | None
    train_e: float | None
    train_f: float | None
    test_e: float | None
    test_f: float | None
    max_gamma_added: float | None


def chain_of(run_dir: Path) -> list[Potential]:
    """The potential of ``run_dir`` and its ancestors, generation 0 first."""
    chain = [load_finished(run_dir)]
    while (lineage := chain[-1].lineage) is not None:
        if len(chain) > MAX_GENERATIONS:
            raise OutputError(f"{run_dir}: the parents form a loop", path=run_dir)
        parent = Path(lineage.parent)
        if not (parent / POTENTIAL_JSON).is_file():
            log.warning(
                "the parent %s of %s is gone: the history ends there", parent, chain[-1].run_dir
            )
            break
        chain.append(load_finished(parent))
        warn_if_swapped(chain[-2], chain[-1])
    return chain[::-1]


def warn_if_swapped(child: Potential, parent: Potential) -> None:
    """Warn when ``parent`` is not the run ``child`` was trained from: the hash of its data
    files now differs from the one the child recorded (a parent run swapped in, or its data
    changed since). A child of an older version recorded the parent's own data hash."""
    lineage = child.lineage
    if lineage is None or lineage.parent_data_sha256 is None:
        return
    now = data_sha256_now(parent.run_dir, parent.provenance)
    if lineage.parent_data_sha256 not in (now, parent.provenance.data_sha256):
        log.warning(
            "the parent %s is not the run %s was trained from: its data files (%s) differ from "
            "those the child recorded (lineage.parent_data_sha256 %s...): it was swapped or "
            "its data changed since",
            parent.run_dir,
            child.run_dir,
            "missing" if now is None else f"sha256 {now[:12]}...",
            lineage.parent_data_sha256[:12],
        )


def _basis(potential: Potential) -> int | None:
    if potential.lineage is not None:
        return potential.lineage.basis_functions
    try:
        data = yaml.safe_load((potential.run_dir / "input.yaml").read_text())
        return int(data["potential"]["functions"]["number_of_functions_per_element"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


def history_rows(chain: list[Potential]) -> list[GenerationRow]:
    rows = []
    for potential in chain:
        lineage, cost = potential.lineage, potential.cost
        train, test = potential.train_metrics, potential.test_metrics
        rows.append(
            GenerationRow(
                generation=0 if lineage is None else lineage.generation,
                run_dir=potential.run_dir,
                structures=None if train is None else train.n_structures,
                test_structures=None if test is None else test.n_structures,
                basis=_basis(potential),
                fitted_from="fresh" if lineage is None else lineage.fitted_from,
                iterations=None if cost is None else cost.iterations,
                wall_s=None if cost is None else cost.fit_s,
                train_e=None if train is None else train.energy_rmse_mev_per_atom,
                train_f=None if train is None else train.force_rmse_mev_per_angstrom,
                test_e=None if test is None else test.energy_rmse_mev_per_atom,
                test_f=None if test is None else test.force_rmse_mev_per_angstrom,
                max_gamma_added=None if lineage is None else lineage.max_gamma_added,
            )
        )
    return rows


def format_history(rows: list[GenerationRow]) -> str:
    """A table, one generation a line (energies meV/atom, forces meV/Å)."""

    def cell(value: float | int | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    header = (
        f"{'gen':>3} {'from':<12} {'train+test':>10} {'basis':>5} {'iter':>5} {'wall s':>7} "
        f"{'train E':>8} {'train F':>8} {'test E':>8} {'test F':>8} {'gamma new':>9}  run"
    )
    lines = [header]
    for row in rows:
        structures = f"{cell(row.structures, 'd')}+{cell(row.test_structures, 'd')}"
        lines.append(
            f"{row.generation:>3} {row.fitted_from:<12} {structures:>10} "
            f"{cell(row.basis, 'd'):>5} {cell(row.iterations, 'd'):>5} "
            f"{cell(row.wall_s, '.1f'):>7} {cell(row.train_e, '.2f'):>8} "
            f"{cell(row.train_f, '.1f'):>8} {cell(row.test_e, '.2f'):>8} "
            f"{cell(row.test_f, '.1f'):>8} {cell(row.max_gamma_added, '.3g'):>9}  {row.run_dir}"
        )
    lines.append("(E: energy RMSE meV/atom, F: force RMSE meV/Å; gamma new: max extrapolation")
    lines.append(" grade of the structures added, under the parent potential)")
    return "\n".join(lines)


def plot_history(rows: list[GenerationRow], path: Path) -> Path:
    """Structures, wall time, errors and gamma of the new data against generation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    generations = [row.generation for row in rows]

    def values(attribute: str) -> list[float]:
        return [float("nan") if (v := getattr(row, attribute)) is None else v for row in rows]

    figure, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex=True)
    axes[0, 0].plot(generations, values("structures"), "o-")
    axes[0, 0].set_ylabel("training structures")
    axes[0, 1].plot(generations, values("wall_s"), "o-", label="wall s (fit)")
    axes[0, 1].plot(generations, values("iterations"), "s--", label="iterations")
    axes[0, 1].legend()
    for key, style in (("train_e", "o-"), ("test_e", "s--")):
        axes[1, 0].plot(generations, values(key), style, label=key.replace("_e", ""))
    axes[1, 0].set_ylabel("energy RMSE (meV/atom)")
    axes[1, 0].legend()
    for key, style in (("train_f", "o-"), ("test_f", "s--")):
        axes[1, 1].plot(generations, values(key), style, label=key.replace("_f", " F"))
    axes[1, 1].plot(generations, values("max_gamma_added"), "^:", label="max gamma new")
    axes[1, 1].set_ylabel("force RMSE (meV/Å); gamma")
    axes[1, 1].set_yscale("log")
    axes[1, 1].legend()
    for axis in axes[1]:
        axis.set_xlabel("generation")
        axis.set_xticks(generations)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
