"""ZBL cutoffs chosen from the data's shortest distances; other baselines pass unchanged."""

from __future__ import annotations

import pytest

from mlip_autopipec.config.config_model import LJBaseline, NoBaseline, ZBLBaseline
from mlip_autopipec.domain_models.baseline import resolve_baseline

SHORTEST = {("Cu", "Cu"): 2.3512, ("Cu", "Pt"): 2.2004, ("Pt", "Pt"): 2.61}


@pytest.mark.parametrize("shortest", [1.5, 1.9, 2.0, 2.1, 3.7])
def test_the_default_cutoffs_follow_the_readme_formula(shortest: float) -> None:
    # README, "Delta learning": outer = d, inner = max(d/2, d - 1 Å); d/2 wins below 2 Å.
    resolved = resolve_baseline(ZBLBaseline(), {("Cu", "Cu"): shortest})
    assert isinstance(resolved, ZBLBaseline)
    inner, outer = resolved.pair_cutoffs["Cu-Cu"]
    assert outer == pytest.approx(shortest)
    assert inner == pytest.approx(max(shortest / 2, shortest - 1.0))


def test_zbl_defaults_each_pair_has_its_own_cutoffs_ending_at_its_shortest_distance() -> None:
    resolved = resolve_baseline(ZBLBaseline(), SHORTEST)
    assert isinstance(resolved, ZBLBaseline)
    # outer = d (margin 0), inner = max(outer / 2, outer - 1 Å)
    assert resolved.pair_cutoffs == {
        "Cu-Cu": (1.351, 2.351),
        "Cu-Pt": (1.2, 2.2),
        "Pt-Pt": (1.61, 2.61),
    }
    assert resolved.inner_cutoff is None and resolved.outer_cutoff is None


def test_zbl_margin_puts_each_outer_cutoff_below_the_shortest_distance() -> None:
    resolved = resolve_baseline(ZBLBaseline(margin=0.1), SHORTEST)
    assert isinstance(resolved, ZBLBaseline)
    # outer = 0.9 d (margin 0.1), inner = max(outer / 2, outer - 1 Å)
    assert resolved.pair_cutoffs == {
        "Cu-Cu": (1.116, 2.116),  # 0.9 x 2.3512 Å, then 1 Å below
        "Cu-Pt": (0.99, 1.98),  # below 2 Å, outer / 2 wins
        "Pt-Pt": (1.349, 2.349),
    }
    assert resolved.inner_cutoff is None and resolved.outer_cutoff is None


def test_zbl_short_pairs_get_half_the_outer_cutoff_as_inner() -> None:
    resolved = resolve_baseline(ZBLBaseline(margin=0.0), {("H", "H"): 0.74})
    assert isinstance(resolved, ZBLBaseline)
    assert resolved.pair_cutoffs == {"H-H": (0.37, 0.74)}


def test_zbl_pairs_absent_from_the_data_get_cutoffs_from_covalent_radii() -> None:
    distances = {("C", "H"): 1.0, ("H", "H"): 1.6}
    resolved = resolve_baseline(ZBLBaseline(), distances, ["O", "C", "H"])
    assert isinstance(resolved, ZBLBaseline)
    assert set(resolved.pair_cutoffs) == {"C-C", "C-H", "C-O", "H-H", "H-O", "O-O"}
    # O-O: covalent radii 0.66 + 0.66 Å (ASE).
    assert resolved.pair_cutoffs["O-O"] == (0.66, 1.32)
    assert resolved.pair_cutoffs["C-H"] == (0.5, 1.0)


def test_zbl_given_pair_cutoffs_win_and_are_checked_against_the_data() -> None:
    given = ZBLBaseline(pair_cutoffs={"Pt-Cu": (1.0, 2.0)})
    resolved = resolve_baseline(given, SHORTEST)
    assert isinstance(resolved, ZBLBaseline)
    assert resolved.pair_cutoffs["Cu-Pt"] == (1.0, 2.0)
    assert resolved.pair_cutoffs["Cu-Cu"] == (1.351, 2.351)
    with pytest.raises(ValueError, match=r"pair_cutoffs\['Cu-Pt'\] inner \(2.3 Å\)"):
        resolve_baseline(ZBLBaseline(pair_cutoffs={"Cu-Pt": (2.3, 2.5)}), SHORTEST)


def test_zbl_user_values_are_kept_for_every_pair() -> None:
    given = ZBLBaseline(inner_cutoff=0.8, outer_cutoff=1.9)
    resolved = resolve_baseline(given, SHORTEST)
    assert isinstance(resolved, ZBLBaseline)
    assert (resolved.inner_cutoff, resolved.outer_cutoff) == (0.8, 1.9)
    assert set(resolved.pair_cutoffs.values()) == {(0.8, 1.9)}


def test_zbl_user_outer_gives_the_default_inner() -> None:
    resolved = resolve_baseline(ZBLBaseline(outer_cutoff=3.0), SHORTEST)
    assert isinstance(resolved, ZBLBaseline)
    assert set(resolved.pair_cutoffs.values()) == {(2.0, 3.0)}


def test_zbl_user_inner_keeps_the_data_outer() -> None:
    resolved = resolve_baseline(ZBLBaseline(inner_cutoff=1.5), SHORTEST)
    assert isinstance(resolved, ZBLBaseline)
    assert set(resolved.pair_cutoffs.values()) == {(1.5, 2.2)}


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
