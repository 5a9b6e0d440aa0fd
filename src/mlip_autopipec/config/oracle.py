"""Configuration of the oracle: which ASE calculator labels structures, where, how many at once."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator

from mlip_autopipec.config.base import NotBool, StrictModel
from mlip_autopipec.config.execution import Execution


def _default_workers() -> int:
    return min(2, os.cpu_count() or 1)


class OracleConfig(StrictModel):
    """The reference method (the oracle): any ASE calculator, named by import path.

    ``calculator(**parameters)`` must return an ASE calculator; each structure gets a fresh one
    (so no state leaks from one structure to the next) whose ``directory`` is the structure's own
    scratch folder, unless ``parameters`` sets one. Labels are cached per oracle: another
    calculator or other parameters never reuse them.
    """

    calculator: str = Field(
        description=(
            "import path of an ASE calculator class or of a function returning one, "
            "'package.module.Name' (e.g. 'ase.calculators.emt.EMT', 'tblite.ase.TBLite', "
            "'ase.calculators.espresso.Espresso'), or '/path/to/file.py:Name' for one in a file"
        )
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "keyword arguments of the calculator, as its documentation names them (e.g. "
            "{method: GFN2-xTB} for TBLite); JSON-like values only"
        ),
    )
    workers: Annotated[PositiveInt, NotBool] = Field(
        default_factory=_default_workers,
        description=(
            "structures labelled at once, each in its own process on this machine (default: "
            "2, or 1 on a single core); set 1 for a calculator that uses every core itself"
        ),
    )
    chunk_size: Annotated[PositiveInt, NotBool] = Field(
        10,
        description=(
            "structures per batch job when execution is a scheduler (one job per chunk, "
            "labelled one after another in it); unused on this machine"
        ),
    )
    execution: Execution | None = Field(
        None,
        description=(
            "where the oracle runs: None or type: local on this machine (worker processes); "
            "type: slurm/pbs/lsf as batch jobs, one per chunk (the cache directory must be on "
            "a filesystem the compute nodes share)"
        ),
    )
    max_failure_fraction: Annotated[NonNegativeFloat, NotBool] = Field(
        0.2,
        lt=1.0,
        description=(
            "fraction (0 to <1) of the structures of one labelling that may fail (exception, "
            "SCF not converged, non-finite result); above it labelling stops with an error"
        ),
    )
    timeout_s: Annotated[PositiveFloat, NotBool] | None = Field(
        None,
        description=(
            "s, longest a single structure may take; it then fails (and is recorded); None: "
            "no limit. Checked when the calculator's Python code runs (e.g. while it waits "
            "for its external program)"
        ),
    )
    keep_files: bool = Field(
        False,
        description=(
            "keep each structure's scratch folder (what a file-based calculator writes) after "
            "it was labelled; a failed structure's folder is always kept"
        ),
    )

    @field_validator("calculator")
    @classmethod
    def _importable(cls, value: str) -> str:
        load_calculator_factory(value)
        return value

    @field_validator("parameters")
    @classmethod
    def _json_like(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value, sort_keys=True)
        except (TypeError, ValueError) as error:
            raise ValueError(f"must hold JSON-like values only ({error})") from error
        return value

    def identity(self) -> str:
        """A short hash of the calculator and its parameters: the cache's folder of this oracle."""
        text = json.dumps(
            {"calculator": self.calculator, "parameters": self.parameters}, sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def make_calculator(self) -> Any:
        """A fresh calculator: ``calculator(**parameters)``."""
        return load_calculator_factory(self.calculator)(**self.parameters)


def load_calculator_factory(path: str) -> Callable[..., Any]:
    """The class or function named by ``path`` ('package.module.Name' or 'file.py:Name').

    Raises ValueError saying what is missing (pydantic reports it under the field's name).
    """
    module_name, separator, name = path.rpartition(":") if ":" in path else path.rpartition(".")
    if not separator or not module_name or not name:
        raise ValueError(
            f"'{path}' is not an import path: expected 'package.module.Name' or 'file.py:Name'"
        )
    if module_name.endswith(".py"):
        module = _module_from_file(Path(module_name))
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(f"cannot import module '{module_name}' ({error})") from error
    factory = getattr(module, name, None)
    if factory is None:
        raise ValueError(f"module '{module_name}' has no '{name}'")
    if not callable(factory):
        raise ValueError(f"'{path}' is not a class or function")
    return factory  # type: ignore[no-any-return]


def _module_from_file(file: Path) -> Any:
    file = file.expanduser().resolve()
    if not file.is_file():
        raise ValueError(f"file {file} does not exist")
    module_name = f"_mlip_autopipec_oracle_{hashlib.sha256(str(file).encode()).hexdigest()[:12]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {file} as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's module may fail in any way
        raise ValueError(f"importing {file} failed ({type(error).__name__}: {error})") from error
    sys.modules[module_name] = module
    return module
