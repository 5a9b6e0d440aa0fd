"""A user's own oracle, imported by file path: EMT that fails on purpose and counts its calls.

Not a test module: the oracle config names it as '<this file>:FlakyEMT'.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT


class FlakyEMT(Calculator):
    """EMT, except for structures of the atom counts named: ``raise_for`` raise (as an SCF that
    does not converge), ``nan_for`` give a NaN energy, ``inf_forces_for`` infinite forces,
    ``crash_for`` end the process, ``sleep_for`` sleep ``sleep_s`` first. Each call appends a
    line (atom count, pid) to ``count_file``."""

    implemented_properties = ["energy", "forces"]  # noqa: RUF012

    def __init__(
        self,
        count_file: str,
        raise_for: tuple[int, ...] = (),
        nan_for: tuple[int, ...] = (),
        inf_forces_for: tuple[int, ...] = (),
        crash_for: tuple[int, ...] = (),
        sleep_for: tuple[int, ...] = (),
        sleep_s: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.count_file = Path(count_file)
        self.raise_for, self.nan_for, self.inf_forces_for = raise_for, nan_for, inf_forces_for
        self.crash_for, self.sleep_for, self.sleep_s = crash_for, sleep_for, sleep_s

    def calculate(
        self, atoms: Any = None, properties: Any = ("energy",), system_changes: Any = all_changes
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        n = len(self.atoms)
        with open(self.count_file, "a") as stream:
            stream.write(f"{n} {os.getpid()}\n")
        if n in self.crash_for:
            os._exit(9)
        if n in self.sleep_for:
            time.sleep(self.sleep_s)
        if n in self.raise_for:
            raise RuntimeError("SCF not converged after 100 cycles")
        emt = EMT()
        structure = self.atoms.copy()
        structure.calc = emt
        energy = structure.get_potential_energy()
        forces = structure.get_forces()
        if n in self.nan_for:
            energy = float("nan")
        if n in self.inf_forces_for:
            forces[0, 0] = np.inf
        self.results = {"energy": energy, "forces": forces}


def calls(count_file: Path) -> list[int]:
    """Atom counts of the calls recorded in ``count_file``."""
    if not count_file.exists():
        return []
    return [int(line.split()[0]) for line in count_file.read_text().splitlines()]
