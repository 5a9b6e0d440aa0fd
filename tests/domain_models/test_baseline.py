"""ZBL cutoffs chosen from the data's shortest distances; other baselines pass unchanged."""

from __future__ import annotations

import pytest

from mlip_autopipec.config.config_model import LJBaseline, NoBaseline, ZBLBaseline
from mlip_autopipec.domain_models.baseline import DEFAULT_ZBL_SWITCH_WIDTH, resolve_baseline

SHORTEST = {("Cu", "Cu"): 2.3512, ("Cu", "Pt"): 2.2004, ("Pt", "Pt"): 2.61}


def test_default_switch_width_is_one_angstrom() -> None:
    assert DEFAULT_ZBL_SWITCH_WIDTH == 1.0


def test_zbl_defaults_outer_is_the_shortest_distance_inner_one_angstrom_below() -> None:
    resolved = resolve_baseline(ZBLBaseline(), SHORTEST)

    assert resolved == ZBLBaseline(inner_cutoff=1.2, outer_cutoff=2.2)
    # max(outer / 2, outer - 1): outer - 1 wins above 2 Å.
    assert resolved.outer_cutoff == round(2.2004, 3)
    assert resolved.inner_cutoff == round(2.2004 - 1.0, 3)


def test_zbl_defaults_inner_is_half_of_a_short_outer() -> None:
    resolved = resolve_baseline(ZBLBaseline(), {("H", "H"): 0.74})
    assert isinstance(resolved, ZBLBaseline)
    assert resolved.outer_cutoff == 0.74
    assert resolved.inner_cutoff == 0.37


def test_zbl_user_values_are_kept() -> None:
    given = ZBLBaseline(inner_cutoff=0.8, outer_cutoff=1.9)
    assert resolve_baseline(given, SHORTEST) == given


def test_zbl_user_outer_gives_the_default_inner() -> None:
    resolved = resolve_baseline(ZBLBaseline(outer_cutoff=3.0), SHORTEST)
    assert resolved == ZBLBaseline(inner_cutoff=2.0, outer_cutoff=3.0)


def test_zbl_user_inner_keeps_the_data_outer() -> None:
    resolved = resolve_baseline(ZBLBaseline(inner_cutoff=1.5), SHORTEST)
    assert resolved == ZBLBaseline(inner_cutoff=1.5, outer_cutoff=2.2)


def test_zbl_inner_at_or_beyond_the_shortest_distance_is_rejected() -> None:
    with pytest.raises(ValueError) as caught:
        resolve_baseline(ZBLBaseline(inner_cutoff=2.5), SHORTEST)
    message = str(caught.value)
    assert "b_ref.inner_cutoff (2.5 Å)" in message
    assert "shortest interatomic distance in the data (2.200 Å)" in message


def test_zbl_inner_equal_to_the_shortest_distance_is_rejected() -> None:
    with pytest.raises(ValueError, match="must lie below the shortest interatomic distance"):
        resolve_baseline(ZBLBaseline(inner_cutoff=2.0, outer_cutoff=3.0), {("Cu", "Cu"): 2.0})


def test_zbl_default_inner_below_shortest_when_user_outer_is_large() -> None:
    # outer 6 Å gives inner 5 Å, beyond the data's shortest distance: refused, not silently moved.
    with pytest.raises(ValueError, match=r"b_ref.inner_cutoff \(5.0 Å\)"):
        resolve_baseline(ZBLBaseline(outer_cutoff=6.0), SHORTEST)


def test_lj_and_none_are_unchanged() -> None:
    lj = LJBaseline(epsilon={"Cu": 0.4}, sigma={"Cu": 2.3}, cutoff=4.0)
    none = NoBaseline()

    assert resolve_baseline(lj, SHORTEST) is lj
    assert resolve_baseline(none, SHORTEST) is none
    assert resolve_baseline(none, {}) is none
