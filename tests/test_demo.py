"""The demo: its structures, and `mlip-autopipec demo` run through with fake pacemaker programs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mlip_autopipec.cli import EXIT_OK, main
from mlip_autopipec.demo import demo_dataset, demo_structures
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.infrastructure.trainer.cost import estimate as cost

from .conftest import expect_pacemaker_input


def test_the_demo_structures_are_the_85_the_readme_lists() -> None:
    structures = demo_structures()
    kinds = Counter(atoms.info["name"].split("/")[0].split("_")[0] for atoms in structures)
    assert kinds == {"bulk": 70, "vacancy": 6, "surface111": 6, "dimer": 3}
    names = [atoms.info["name"] for atoms in structures]
    assert len(set(names)) == len(names) == 85
    dimers = [atoms for atoms in structures if atoms.info["name"].startswith("dimer")]
    assert sorted(atoms.get_distance(0, 1) for atoms in dimers) == pytest.approx([2.2, 2.3, 2.4])
    assert {s for atoms in structures for s in atoms.get_chemical_symbols()} == {"Cu", "Pt"}


def test_the_demo_data_are_the_same_for_a_seed_and_differ_between_seeds() -> None:
    first = demo_dataset(seed=0)
    assert demo_dataset(seed=0).fingerprint() == first.fingerprint()
    assert demo_dataset(seed=1).fingerprint() != first.fingerprint()
    assert len(first) == 85 and first.elements == ("Cu", "Pt")


@pytest.mark.usefixtures("fake_pacemaker")
def test_the_demo_command_fits_with_a_time_budget_and_prints_where_its_files_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cost estimate counts the machine's load; a busy test machine must not refuse the
    # 3-minute budget (an idle one does not).
    monkeypatch.setattr(cost, "contention", lambda threads: 1.0)
    expect_pacemaker_input(monkeypatch, "demo")  # the fake checks the demo's input.yaml
    out = tmp_path / "demo_run"
    assert main(["demo", "--out", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert str(out / "report" / "mlip_autopipec" / "report.html") in printed

    # The fake stops at the deadline it was given (the time budget), as the real fit does.
    assert "time budget reached" in (out / "pacemaker.log").read_text()
    potential = Potential.load(out)
    assert potential.provenance.n_structures == 85
    assert potential.provenance.data_sha256 == demo_dataset().fingerprint()
    # The fake's predictions are 2 meV/atom off: the printed errors are those of the run.
    assert potential.train_metrics is not None
    assert potential.train_metrics.energy_rmse_mev_per_atom == pytest.approx(2.0)
    assert "energy RMSE     2.00 meV/atom" in printed
