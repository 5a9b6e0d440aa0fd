"""What every config model shares: the strict base model, numbers that refuse booleans."""

from __future__ import annotations

from typing import Any

from ase.data import chemical_symbols
from pydantic import BaseModel, BeforeValidator, ConfigDict

#: Every chemical symbol.
ELEMENTS = frozenset(chemical_symbols[1:])

#: Å; no ACE potential needs a larger cutoff, and pacemaker's memory grows with its cube.
MAX_CUTOFF_ANGSTROM = 15.0


def _not_bool(value: Any) -> Any:
    """YAML's ``true``/``false`` are not numbers (pydantic would read ``true`` as 1)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


#: A number field that refuses booleans.
NotBool = BeforeValidator(_not_bool)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
