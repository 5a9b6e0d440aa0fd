"""Physical baselines that the ACE potential corrects: choice of their cutoffs from the data."""

from __future__ import annotations

from collections.abc import Mapping

from mlip_autopipec.config.config_model import Baseline, ZBLBaseline

#: Default width (Å) of the ZBL switching region, at most half the outer cutoff.
DEFAULT_ZBL_SWITCH_WIDTH = 1.0


def resolve_baseline(
    baseline: Baseline, shortest_distances: Mapping[tuple[str, str], float]
) -> Baseline:
    """The baseline with every cutoff left open chosen from the data's shortest distances (Å).

    ZBL: the outer cutoff defaults to the shortest distance in the data, so the baseline is zero
    wherever there is data and cannot leak into equilibrium energies; the inner cutoff defaults
    to ``max(outer / 2, outer - 1 Å)``, a switching region wide enough to avoid kinks. ACE is
    then faded out over the same region (see the input.yaml builder), so below ``inner`` only ZBL
    acts.
    """
    if not isinstance(baseline, ZBLBaseline):
        return baseline
    shortest = min(shortest_distances.values())
    outer = baseline.outer_cutoff
    if outer is None:
        outer = round(shortest, 3)
        if baseline.inner_cutoff is not None and baseline.inner_cutoff >= outer:
            outer = baseline.inner_cutoff + DEFAULT_ZBL_SWITCH_WIDTH
    inner = baseline.inner_cutoff
    if inner is None:
        inner = round(max(0.5 * outer, outer - DEFAULT_ZBL_SWITCH_WIDTH), 3)
    if inner >= shortest:
        raise ValueError(
            f"b_ref.inner_cutoff ({inner} Å) must lie below the shortest interatomic distance in "
            f"the data ({shortest:.3f} Å): ZBL at full strength where there is data would "
            "dominate the fit"
        )
    return ZBLBaseline(inner_cutoff=inner, outer_cutoff=outer)
