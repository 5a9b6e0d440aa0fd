"""Generation 0's structures without --data: the starting ones, rattled and strained."""

from __future__ import annotations

import numpy as np
from ase.build import bulk, molecule

from mlip_autopipec.config.loop import InitialStructures
from mlip_autopipec.loop.initial import copies_for_active_set, initial_structures


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


def test_generation_zero_has_an_environment_per_basis_function_of_every_element() -> None:
    ethanol, water = molecule("CH3CH2OH"), molecule("H2O")
    # C: 2 atoms, H: 8, O: 2 per set of starting structures; 20 functions need 10 sets of C.
    assert copies_for_active_set([ethanol, water], 4, 20) == 9
    assert copies_for_active_set([ethanol, water], 12, 20) == 12  # enough already
    assert copies_for_active_set([ethanol, water], 4, None) == 4  # the basis rule fits the data
    cells = initial_structures([ethanol, water], InitialStructures(), copies=9)
    carbons = sum(atoms.get_chemical_symbols().count("C") for atoms in cells)
    assert len(cells) == 20 and carbons == 20
