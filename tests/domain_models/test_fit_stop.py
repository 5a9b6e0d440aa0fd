"""FitStop: how a fit ended, in potential.json, the summary and on loading."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from mlip_autopipec.domain_models.fit_stop import FitStop
from mlip_autopipec.domain_models.potential import Potential, Provenance


def _potential(run_dir: Path, fit_stop: FitStop | None) -> Potential:
    return Potential(
        run_dir=run_dir,
        trainer="pacemaker",
        yace_file="potential.yace",
        elements=("Cu",),
        cutoff=4.5,
        fit_stop=fit_stop,
        provenance=Provenance(data_sha256="d" * 64, config_sha256="c" * 64),
    )


def test_an_interim_potential_is_recorded_and_warned_about_on_loading(tmp_path: Path) -> None:
    stop = FitStop(stopped_at_iteration=304, finished_from="interim")
    _potential(tmp_path, stop).save()
    assert '"finished_from": "interim"' in (tmp_path / "potential.json").read_text()

    with pytest.warns(UserWarning, match="interim potential of an interrupted fit .iteration 304"):
        loaded = Potential.load(tmp_path)
    assert loaded.fit_stop == stop
    assert "INTERIM potential" in stop.describe() and "iteration 304" in stop.describe()


def test_a_resumed_or_early_stopped_fit_loads_without_a_warning(tmp_path: Path) -> None:
    stop = FitStop(stopped_at_iteration=400, resumed_from_iteration=304, early_stop=True)
    _potential(tmp_path, stop).save()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Potential.load(tmp_path).fit_stop == stop
    text = stop.describe()
    assert "resumed from iteration 304, 400 iterations in all" in text
    assert "stopped early at iteration 400" in text
