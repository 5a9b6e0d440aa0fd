"""Typed, validated configuration of the Trainer stage (pydantic models)."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from mlip_autopipec.config.active_set import ActiveSetSettings
from mlip_autopipec.config.base import ELEMENTS, MAX_CUTOFF_ANGSTROM, NotBool, StrictModel
from mlip_autopipec.config.baseline import Baseline, LJBaseline, NoBaseline, ZBLBaseline
from mlip_autopipec.config.execution import Execution, LocalExecution
from mlip_autopipec.config.fit_settings import AceParams, FitSettings
from mlip_autopipec.errors import ConfigurationError

#: The config's public models, importable from here (their homes are the modules above).
__all__ = [
    "AceParams",
    "ActiveSetSettings",
    "Baseline",
    "Executables",
    "FitSettings",
    "LJBaseline",
    "NoBaseline",
    "PipelineConfig",
    "TrainerConfig",
    "ZBLBaseline",
    "load_config",
    "parse_config",
    "parse_trainer_config",
]


class Executables(StrictModel):
    """Names (looked up on PATH) or paths of pacemaker's programs."""

    pacemaker: str = Field("pacemaker", description="the fitting program")
    pace_yaml2yace: str = Field("pace_yaml2yace", description="converts .yaml to .yace")
    pace_select: str = Field("pace_select", description="D-optimal structure selection")
    pace_activeset: str = Field("pace_activeset", description="active set of a fitted potential")


class TrainerConfig(StrictModel):
    """Configuration of the Trainer stage: the ``trainer:`` section of a config file."""

    type: Literal["mock", "pacemaker"] = Field(description="mock: no fit (for tests); pacemaker")
    cutoff: Annotated[PositiveFloat, NotBool] = Field(
        description=f"Å, radial cutoff of the ACE potential (typically 5 to 7; at most "
        f"{MAX_CUTOFF_ANGSTROM:g})"
    )
    b_ref: Baseline = Field(
        default_factory=ZBLBaseline,
        description=(
            "physical baseline the ACE potential corrects; default: ZBL with cutoffs per "
            "element pair from the data"
        ),
    )
    ace_params: AceParams = Field(default_factory=AceParams, description="the ACE basis")
    fit: FitSettings = Field(default_factory=FitSettings, description="the fit")
    active_set: ActiveSetSettings = Field(
        default_factory=ActiveSetSettings, description="D-optimal selection and active set"
    )
    reference_energies: Literal["auto"] | dict[str, float] = Field(
        "auto",
        description=(
            "eV per atom of each element, subtracted from total energies before the fit and "
            "added back by the potential; 'auto': a free atom of the data gives its element's "
            "value, the other elements are fitted by least squares to the data"
        ),
    )
    accept_failed_checks: bool = Field(
        False,
        description=(
            "keep a potential that fails the safety gate (dimers, compression) as a normal "
            "result; false: the run ends with an error (CLI exit status 3)"
        ),
    )
    executables: Executables = Field(
        default_factory=Executables, description="where pacemaker's programs are"
    )
    structures_without_neighbours: Literal["error", "drop"] = Field(
        "error",
        description=(
            "a structure of several atoms in which an atom has no neighbour within the cutoff, "
            "which pacemaker cannot use: 'error' names it and stops, 'drop' leaves it out with "
            "a warning. A single free atom is never fitted: with reference_energies 'auto' "
            "its energy is its element's reference energy"
        ),
    )
    time_limit_seconds: Annotated[PositiveFloat, NotBool] | None = Field(
        None, description="s; a pacemaker run that takes longer is stopped (None: no limit)"
    )
    threads: Annotated[PositiveInt, NotBool] | None = Field(
        None, description="CPU threads for pacemaker (None: all cores of the machine)"
    )
    gpu_devices: str | None = Field(
        None,
        description=(
            "CUDA_VISIBLE_DEVICES for pacemaker, e.g. '0' or '0,1'; None: the GPUs of the "
            "machine if it has any, else CPU only; '' forces CPU only"
        ),
    )
    execution: Execution = Field(
        default_factory=LocalExecution,
        description=(
            "where the fit runs: local (this machine) or a batch job of slurm, pbs or lsf "
            "(docs: how-to/clusters)"
        ),
    )

    @field_validator("cutoff")
    @classmethod
    def _cutoff_is_physical(cls, value: float) -> float:
        if not value <= MAX_CUTOFF_ANGSTROM:  # also inf
            raise ValueError(
                f"a cutoff of {value} Å is not physical for an ACE potential: typical values "
                f"are 5 to 7 Å, at most {MAX_CUTOFF_ANGSTROM:g} Å (pacemaker's memory and time "
                "grow with the cube of the cutoff)"
            )
        return value

    @field_validator("reference_energies")
    @classmethod
    def _reference_keys_are_elements(cls, value: Any) -> Any:
        if isinstance(value, dict):
            unknown = sorted(key for key in value if key not in ELEMENTS)
            if unknown:
                raise ValueError(f"unknown element symbols: {unknown}")
        return value

    @field_validator("execution")
    @classmethod
    def _gpus_of_a_batch_job(cls, value: Any, info: ValidationInfo) -> Any:
        if value.type != "local" and info.data.get("gpu_devices") is not None:
            raise ValueError(
                "gpu_devices chooses GPUs of this machine; for a batch job ask for them "
                "with execution.gpus"
            )
        fit = info.data.get("fit")
        if value.type != "local" and fit is not None and fit.time_budget is not None:
            raise ValueError(
                "fit.time_budget sizes a fit on this machine; a batch job is bounded by "
                "execution.time_limit: give fit.maxiter instead"
            )
        return value

    @field_validator("b_ref")
    @classmethod
    def _baseline_within_cutoff(cls, value: Any, info: ValidationInfo) -> Any:
        cutoff = info.data.get("cutoff")
        if cutoff is None:
            return value
        outer = getattr(value, "outer_cutoff", None)
        inner = getattr(value, "inner_cutoff", None)
        for key, (_, pair_outer) in getattr(value, "pair_cutoffs", {}).items():
            if pair_outer > cutoff:
                raise ValueError(
                    f"pair_cutoffs['{key}']: outer ({pair_outer} Å) must not exceed the ACE "
                    f"cutoff trainer.cutoff ({cutoff} Å)"
                )
        if outer is not None and outer > cutoff:
            raise ValueError(
                f"outer_cutoff ({outer} Å) must not exceed the ACE cutoff "
                f"trainer.cutoff ({cutoff} Å)"
            )
        if inner is not None and inner >= cutoff:
            raise ValueError(
                f"inner_cutoff ({inner} Å) must be smaller than the ACE cutoff "
                f"trainer.cutoff ({cutoff} Å)"
            )
        return value


class PipelineConfig(StrictModel):
    """A whole config file; each stage of the pipeline has its section."""

    trainer: TrainerConfig


# -- loading --------------------------------------------------------------------------------------


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML config file; every problem is reported with its field path."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigurationError([(str(path), "file does not exist")]) from error
    except IsADirectoryError as error:
        raise ConfigurationError([(str(path), "is a directory, not a config file")]) from error
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            [(str(path), "is not a text file (not UTF-8): is it the config file?")]
        ) from error
    except OSError as error:
        raise ConfigurationError([(str(path), f"cannot be read: {error.strerror}")]) from error
    except yaml.YAMLError as error:
        raise ConfigurationError([(str(path), f"not valid YAML: {error}")]) from error
    if not isinstance(raw, dict):
        raise ConfigurationError(
            [("<top level>", "expected a mapping with a 'trainer' section")], source=path
        )
    return parse_config(raw, source=path)


def parse_config(raw: dict[str, Any], *, source: str | Path | None = None) -> PipelineConfig:
    """Validate a config mapping (as read from YAML)."""
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigurationError(_problems(error, raw), source=source) from None


def parse_trainer_config(raw: dict[str, Any]) -> TrainerConfig:
    """Validate the ``trainer`` section alone; field paths in errors start with ``trainer.``."""
    return parse_config({"trainer": raw}).trainer


#: At most this many problems are listed, each input shown in at most ``_INPUT_CHARS`` characters:
#: a message never grows with the input (a YAML alias bomb stands for ~10**9 values).
_MAX_PROBLEMS = 20
_INPUT_CHARS = 120
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 60, 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4


def shortened(value: Any, limit: int = _INPUT_CHARS) -> str:
    """``repr(value)`` in at most ``limit`` characters, without walking all of a large value."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _problems(error: ValidationError, raw: Any) -> list[tuple[str, str]]:
    problems = []
    details = error.errors(include_url=False, include_input=True, include_context=False)
    for detail in details[:_MAX_PROBLEMS]:
        path = _field_path(detail["loc"], raw)
        reason = detail["msg"].removeprefix("Value error, ")
        if len(reason) > 400:
            reason = reason[:397] + "..."
        if detail["type"] not in {"missing", "extra_forbidden"} and "input" in detail:
            reason += f" (got {shortened(detail['input'])})"
        problems.append((path, reason))
    if len(details) > _MAX_PROBLEMS:
        problems.append(("...", f"{len(details) - _MAX_PROBLEMS} more problems not listed"))
    return problems


def _field_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """Dotted path of an error location, without pydantic's union tags (b_ref.zbl.x: b_ref.x)."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(node, dict) and item in node:  # noqa: SIM114 - types differ for mypy
            node = node[item]
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            node = node[item]
        elif isinstance(node, dict) and node.get("type") == item:
            continue  # a discriminated union's tag: not a key of the user's file
        elif isinstance(item, str) and _is_union_tag(item):
            continue
        else:
            node = None
        parts.append(f"[{item}]" if isinstance(item, int) else str(item))
    return ".".join(parts).replace(".[", "[")


#: pydantic's tags of plain types in a union (``float | Literal['auto']`` tags ``float``).
_SCALAR_TAGS = frozenset({"float", "int", "str", "bool", "none"})


def _is_union_tag(item: str) -> bool:
    """Whether a location item that is no key of the user's file names a union member.

    Field names are identifiers; pydantic's tags are not (``constrained-float``,
    ``literal['auto']``, ``dict[str,float]``, ``function-after[...]``) or are plain type names.
    """
    return not item.isidentifier() or item in _SCALAR_TAGS
