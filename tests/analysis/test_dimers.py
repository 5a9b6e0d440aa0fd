"""Short-range check of dimer curves: monotonic rise below the data, warnings, plot."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from mlip_autopipec.analysis.dimers import (
    DimerCurve,
    check_dimer_curves,
    dimer_curves,
    plot_dimer_curves,
)
from mlip_autopipec.domain_models.baseline import BaselineCalculator, ZBLPotential


def _curve(pair: tuple[str, str], energy_of_r) -> DimerCurve:  # type: ignore[no-untyped-def]
    distances = np.arange(0.5, 5.0001, 0.01)
    energies = energy_of_r(distances)
    return DimerCurve(pair=pair, distances=distances.tolist(), energies=energies.tolist())


def test_a_steadily_repulsive_curve_passes_and_reports_energies() -> None:
    curve = _curve(("Cu", "Cu"), lambda r: 10.0 * np.exp(-2.0 * r))
    (check,) = check_dimer_curves([curve], {("Cu", "Cu"): 2.2})
    assert check.repulsive_below_data
    assert check.first_violation_distance is None
    assert check.shortest_distance_in_data == 2.2
    assert check.energies_ev["1"] == pytest.approx(10.0 * np.exp(-2.0), rel=1e-3)


def test_a_well_below_the_data_is_flagged_with_pair_and_distance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A spurious minimum at 1.2 Å: going inwards, the energy falls between 1.5 and 1.2 Å.
    curve = _curve(("Cu", "Pt"), lambda r: 5.0 * (r - 1.2) ** 2 - 2.0 * np.exp(-((r - 1.5) ** 2)))
    with caplog.at_level(logging.WARNING):
        (check,) = check_dimer_curves([curve], {("Cu", "Pt"): 2.0})
    assert not check.repulsive_below_data
    assert check.first_violation_distance is not None
    assert 1.0 < check.first_violation_distance < 2.0
    assert "Cu-Pt" in caplog.text


def test_a_minimum_above_the_data_is_not_a_violation() -> None:
    curve = _curve(("Pt", "Pt"), lambda r: (r - 2.6) ** 2)
    (check,) = check_dimer_curves([curve], {("Pt", "Pt"): 2.4})
    assert check.repulsive_below_data


def test_a_pair_absent_from_the_data_is_checked_below_its_covalent_distance() -> None:
    # Cu-Pt covalent radii (ASE): 1.32 + 1.36 Å. A well at 2.0 Å lies below that.
    curve = _curve(("Cu", "Pt"), lambda r: 3.0 * (r - 2.0) ** 2)
    (check,) = check_dimer_curves([curve], {("Cu", "Cu"): 1.8})
    assert check.shortest_distance_in_data is None
    assert check.checked_below == pytest.approx(2.68)
    assert not check.repulsive_below_data
    failure = check.failure()
    assert (
        failure is not None and "dimer Cu-Pt" in failure and "no Cu-Pt pair in the data" in failure
    )


def test_a_flat_curve_without_a_wall_fails() -> None:
    # Flat down to 0.5 Å: monotonic, but nothing keeps two atoms apart.
    curve = _curve(("O", "O"), lambda r: 0.2 * np.exp(-r))
    (check,) = check_dimer_curves([curve], {("O", "O"): 1.2})
    assert check.first_violation_distance is None
    assert check.wall_ev is not None and check.wall_ev < 1.0
    assert not check.repulsive_below_data
    failure = check.failure()
    assert failure is not None and "nothing keeps the atoms apart" in failure
    assert "1.200 Å" in failure


def test_curves_of_every_pair_and_the_plot(tmp_path: Path) -> None:
    calculator = BaselineCalculator(ZBLPotential(inner_cutoff=1.0, outer_cutoff=2.0))
    curves = dimer_curves(calculator, ["Pt", "Cu"], cutoff=3.0)
    assert [curve.pair for curve in curves] == [("Cu", "Cu"), ("Cu", "Pt"), ("Pt", "Pt")]
    assert curves[0].distances[0] == pytest.approx(0.5)
    assert curves[0].distances[-1] == pytest.approx(3.0)
    assert curves[0].energies[-1] == 0.0
    checks = check_dimer_curves(curves, {("Cu", "Cu"): 2.1})
    assert all(check.repulsive_below_data for check in checks)
    png = plot_dimer_curves(curves, {("Cu", "Cu"): 2.1}, tmp_path / "dimers.png")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_shallow_dip_below_the_data_is_tolerated_a_deep_one_is_not() -> None:
    # A dimer bound a little shorter than the data (like C2): a 0.5 eV dip, then a wall.
    def curve_with_dip(depth: float) -> DimerCurve:
        return _curve(
            ("C", "C"),
            lambda r: 30.0 * np.exp(-4.0 * (r - 0.5)) - depth * np.exp(-(((r - 1.3) / 0.1) ** 2)),
        )

    (shallow,) = check_dimer_curves([curve_with_dip(0.5)], {("C", "C"): 1.44})
    assert shallow.repulsive_below_data
    (deep,) = check_dimer_curves([curve_with_dip(3.0)], {("C", "C"): 1.44})
    assert not deep.repulsive_below_data
    assert deep.first_violation_distance is not None
    assert 1.2 < deep.first_violation_distance < 1.44
