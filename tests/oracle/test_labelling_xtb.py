"""A real oracle by import path: tblite's GFN2-xTB in two spawned workers, as label_with_xtb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule

from mlip_autopipec.config.oracle import OracleConfig
from mlip_autopipec.oracle.labelling import label_structures
from mlip_autopipec.oracle.xtb import label_with_xtb

pytest.importorskip("tblite")


def test_tblite_by_import_path_labels_like_the_xtb_oracle(tmp_path: Path) -> None:
    structures = [molecule("H2O"), molecule("CH3OH"), molecule("CH4")]
    structures[1].rattle(0.05, seed=1)
    config = OracleConfig(
        calculator="tblite.ase.TBLite",
        parameters={"method": "GFN2-xTB", "verbosity": 0},
        workers=2,
    )
    result = label_structures(structures, config, tmp_path / "cache")
    expected = label_with_xtb(structures)
    assert result.n_calls == 3 and result.failures == []
    for got, want in zip(result.dataset, expected, strict=True):
        assert got.energy == pytest.approx(want.energy, abs=1e-6)
        np.testing.assert_allclose(got.forces, want.forces, atol=1e-5)
    # The scratch folders of the calculations were ours, and are gone.
    assert not list((tmp_path / "cache").glob("*/scratch/*"))
