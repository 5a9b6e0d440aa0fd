"""The CLI's commands on a finished run: ``report``, ``gamma``, ``evaluate`` and ``dimers``."""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.cli.common import EXIT_OK, UsageError, log, read_data
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import POTENTIAL_JSON, load_finished_run
from mlip_autopipec.errors import DatasetValidationError, OutputError


def report(run_dir: Path, compute_dimers: bool, overwrite: bool) -> int:
    from mlip_autopipec.infrastructure.rundir.claim import is_ours
    from mlip_autopipec.report import REPORT_DIR, build_report

    if not (is_ours(run_dir) or (run_dir / POTENTIAL_JSON).is_file()):
        raise UsageError(
            f"{run_dir} is not a run directory of mlip-autopipec (no potential.json, no "
            "manifest): no report is written into it"
        )
    report_dir = run_dir / REPORT_DIR
    if report_dir.exists() and any(report_dir.iterdir()) and not (is_ours(run_dir) or overwrite):
        raise OutputError(
            f"{report_dir} exists and {run_dir} was not made by mlip-autopipec: give "
            "--overwrite to replace the report there",
            path=report_dir,
        )
    print(f"report: {build_report(run_dir, compute_dimers=compute_dimers)}")
    return EXIT_OK


def gamma(run_dir: Path, data: Dataset) -> int:
    from mlip_autopipec.analysis.extrapolation import extrapolation_grades, format_grades

    potential = load_finished_run(run_dir)
    try:
        grades = extrapolation_grades(potential, data)
    except ValueError as error:  # no active set, a mock potential
        raise UsageError(f"no extrapolation grade: {error}") from error
    print(format_grades(grades, threshold=potential.gamma_tolerance))
    return EXIT_OK


def evaluate(run_dir: Path, data: Path, out: Path | None, worst: int, overwrite: bool) -> int:
    from mlip_autopipec.analysis.evaluation import (
        EVALUATION_FILES,
        evaluate_potential,
        format_evaluation,
        overlap_warning,
        write_evaluation,
    )
    from mlip_autopipec.infrastructure.rundir.claim import refuse_to_overwrite
    from mlip_autopipec.infrastructure.rundir.files import TRAINING_SET

    potential = load_finished_run(run_dir)
    report = out or potential.run_dir / f"evaluation_{data.name.split('.')[0]}"
    if report.exists() and not report.is_dir():
        raise UsageError(f"the report directory {report} is a file")
    for name in EVALUATION_FILES:
        refuse_to_overwrite(report / name, overwrite=overwrite, what="evaluation file")
    dataset = read_data(data, trust_pickle=False)
    unknown = sorted(set(dataset.elements) - set(potential.elements))
    if unknown:
        raise DatasetValidationError(
            f"holds {unknown}, which the potential (elements {list(potential.elements)}) "
            "was not trained on",
            source=data,
        )
    training_file = potential.run_dir / TRAINING_SET
    if training_file.exists():
        warning = overlap_warning(Dataset.read(training_file), dataset, f"evaluated data {data}")
        if warning is not None:
            log.warning("%s", warning)
    evaluation = evaluate_potential(potential, dataset)
    write_evaluation(evaluation, report, worst=worst)
    print(format_evaluation(evaluation, worst))
    print(f"report: {report}")
    return EXIT_OK


def dimers(run_dir: Path, png: Path | None, overwrite: bool) -> int:
    from mlip_autopipec.analysis.dimers import DIMERS_PNG, check_short_range
    from mlip_autopipec.infrastructure.rundir.claim import is_ours, refuse_to_overwrite

    potential = load_finished_run(run_dir)
    plot = png or potential.run_dir / DIMERS_PNG
    refuse_to_overwrite(plot, overwrite=overwrite or (png is None and is_ours(run_dir)))
    distances = {
        check.pair: check.shortest_distance_in_data
        for check in potential.dimer_checks
        if check.shortest_distance_in_data is not None
    }
    try:
        calculator = potential.ase_calculator()
    except ValueError as error:  # a mock potential
        raise UsageError(f"no dimer curves: {error}") from error
    checks = check_short_range(calculator, potential.elements, potential.cutoff, distances, plot)
    print(f"{'pair':>7} {'d_min data':>10} {'E(0.6)':>10} {'E(1.0)':>10} {'E(1.5)':>10}  repulsive")
    for check in checks:
        shortest = check.shortest_distance_in_data
        print(
            f"{'-'.join(check.pair):>7} "
            f"{'-' if shortest is None else f'{shortest:.3f} Å':>10} "
            + " ".join(f"{check.energies_ev[r]:10.3g}" for r in ("0.6", "1", "1.5"))
            + f"  {'yes' if check.repulsive_below_data else 'NO'}"
        )
    print(f"energies in eV relative to the cutoff; plot: {plot}")
    return EXIT_OK
