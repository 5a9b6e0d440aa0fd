"""The loop's demo: EMT Cu from one fcc cell, 300 and 1200 K, a few minutes on two cores."""

from __future__ import annotations

from typing import Any

from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config.loop import LoopConfig, parse_loop_config

#: loop.yaml of the demo, as Python data (the how-to shows it as YAML).
DEMO_LOOP_CONFIG: dict[str, Any] = {
    "trainer": {
        "type": "pacemaker",
        "cutoff": 5.0,
        "ace_params": {"number_of_functions_per_element": 20},
        "fit": {"maxiter": 150, "upfit_maxiter": 100, "test_size": 0.1},
    },
    "oracle": {"calculator": "ase.calculators.emt.EMT", "workers": 2},
    "explorer": {
        "temperatures_K": [300, 1200],
        "steps": 300,
        "timestep_fs": 2.0,
        "check_every": 10,
        "workers": 2,
    },
    "loop": {
        "max_iterations": 3,
        "max_selected_structures": 8,
        "initial_structures": {"copies_per_structure": 12, "rattle_stdev": 0.04},
    },
}


def demo_loop_config() -> LoopConfig:
    return parse_loop_config(DEMO_LOOP_CONFIG, source="the loop demo")


def demo_loop_structures() -> list[Atoms]:
    """One 32-atom fcc Cu cell at EMT's lattice constant (3.59 Å)."""
    atoms = bulk("Cu", "fcc", a=3.59, cubic=True).repeat((2, 2, 2))
    atoms.info["name"] = "Cu32"
    return [atoms]
