"""Generation 0's structures without --data: the starting ones, rattled and strained."""

from __future__ import annotations

import numpy as np
from ase.build import bulk, molecule

from mlip_autopipec.config.loop import InitialStructures
from mlip_autopipec.loop.initial import initial_structures


def test_each_structure_and_its_copies() -> None:
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True)
    crystal.info["name"] = "cu"
    water = molecule("H2O")
    water.center(vacuum=5.0)
    settings = InitialStructures(copies_per_structure=3, rattle_stdev=0.05, max_strain=0.03)
    result = initial_structures([crystal, water], settings)
    assert [atoms.info["name"] for atoms in result[:4]] == [f"cu/initial_{k}" for k in range(4)]
    assert result[4].info["name"] == "start_1/initial_0"
    assert np.allclose(result[0].positions, crystal.positions)  # the original itself
    for copy in result[1:4]:
        assert not np.allclose(copy.cell.array, crystal.cell.array)  # strained
        assert np.abs(copy.cell.array - crystal.cell.array).max() <= 0.03 * 3.6 + 1e-9
    for copy in result[5:]:
        assert np.allclose(copy.cell.array, water.cell.array)  # a molecule is not strained
        assert 0 < np.abs(copy.positions - water.positions).max() < 0.5


def test_the_same_seed_gives_the_same_structures() -> None:
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True)
    first = initial_structures([crystal], InitialStructures(seed=3))
    second = initial_structures([crystal], InitialStructures(seed=3))
    other = initial_structures([crystal], InitialStructures(seed=4))
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[1].positions, other[1].positions)
