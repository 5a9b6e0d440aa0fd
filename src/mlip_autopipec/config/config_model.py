"""Typed, validated configuration of the Trainer stage (pydantic models)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from ase.data import chemical_symbols
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlip_autopipec.config.execution import Execution, LocalExecution
from mlip_autopipec.errors import ConfigurationError

_ELEMENTS = frozenset(chemical_symbols[1:])

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


# -- baselines ------------------------------------------------------------------------------------


class ZBLBaseline(StrictModel):
    """Ziegler-Biersack-Littmark nuclear repulsion, as LAMMPS ``pair_style zbl inner outer``.

    For each element pair, the baseline is full strength below its inner cutoff and switched
    smoothly to zero at its outer cutoff. Left unset, every pair gets its own cutoffs from its
    shortest distance in the training data (pairs absent from the data: from covalent radii);
    ``inner_cutoff``/``outer_cutoff`` set one pair of cutoffs for every pair, ``pair_cutoffs``
    for single pairs (README, "Delta learning").
    """

    type: Literal["zbl"] = Field("zbl", description="ZBL (Ziegler-Biersack-Littmark) baseline")
    inner_cutoff: Annotated[PositiveFloat, NotBool] | None = Field(
        None,
        description="Å; ZBL is unswitched below this distance, for every pair. None: per pair.",
    )
    outer_cutoff: Annotated[PositiveFloat, NotBool] | None = Field(
        None, description="Å; ZBL is zero beyond this distance, for every pair. None: per pair."
    )
    pair_cutoffs: dict[str, tuple[PositiveFloat, PositiveFloat]] = Field(
        default_factory=dict,
        description=(
            "Å, [inner, outer] per element pair, e.g. {'C-H': [0.5, 0.9]}; wins over "
            "inner_cutoff/outer_cutoff. A trained potential lists every pair here."
        ),
    )
    margin: Annotated[float, NotBool, Field(ge=0.0, lt=0.5)] = Field(
        0.0,
        description=(
            "fraction of a pair's shortest distance in the data by which its outer cutoff lies "
            "below that distance (cutoffs chosen from the data only)"
        ),
    )

    @model_validator(mode="after")
    def _inner_below_outer(self) -> ZBLBaseline:
        if (
            self.inner_cutoff is not None
            and self.outer_cutoff is not None
            and self.inner_cutoff >= self.outer_cutoff
        ):
            raise ValueError(
                f"inner_cutoff ({self.inner_cutoff} Å) must be smaller than "
                f"outer_cutoff ({self.outer_cutoff} Å)"
            )
        for key, (inner, outer) in self.pair_cutoffs.items():
            if len(split_pair(key)) != 2:
                raise ValueError(f"pair_cutoffs key '{key}' is not an element pair like 'C-H'")
            if inner >= outer:
                raise ValueError(
                    f"pair_cutoffs['{key}']: inner ({inner} Å) must be smaller than outer "
                    f"({outer} Å)"
                )
        return self


def split_pair(key: str) -> tuple[str, ...]:
    """The element symbols of a pair key 'A-B' (an empty tuple if it is not one)."""
    parts = tuple(key.split("-"))
    return parts if all(part in _ELEMENTS for part in parts) else ()


class LJBaseline(StrictModel):
    """Lennard-Jones 12-6, as LAMMPS ``pair_style lj/cut``.

    ``epsilon`` (eV) and ``sigma`` (Å) are given per element (``Cu``) or per pair (``Cu-Pt``);
    a pair that is not given is mixed from its elements (geometric mean, LAMMPS' default).
    """

    type: Literal["lj"] = Field("lj", description="Lennard-Jones 12-6 baseline")
    epsilon: dict[str, PositiveFloat] = Field(description="eV, per element or element pair")
    sigma: dict[str, PositiveFloat] = Field(description="Å, per element or element pair")
    cutoff: Annotated[PositiveFloat, NotBool] = Field(
        description="Å; LJ is zero beyond this distance"
    )
    shift: bool = Field(
        True, description="shift the energy to zero at the cutoff (LAMMPS pair_modify shift yes)"
    )

    @field_validator("epsilon", "sigma")
    @classmethod
    def _keys_are_elements_or_pairs(cls, value: dict[str, float]) -> dict[str, float]:
        for key in value:
            parts = key.split("-")
            if len(parts) > 2 or not all(part in _ELEMENTS for part in parts):
                raise ValueError(
                    f"key '{key}' is neither an element symbol ('Cu') nor a pair ('Cu-Pt')"
                )
        return value


class NoBaseline(StrictModel):
    """No baseline: ACE alone, with pacemaker's ZBL core below the shortest distance in the data.

    Measured on held-out molecules (README, "Delta learning"), that core's 0.1 Å switch puts a
    step of tens of eV/Å into the forces of bonds a little shorter than the data.
    """

    type: Literal["none"] = Field("none", description="no baseline")


Baseline = Annotated[ZBLBaseline | LJBaseline | NoBaseline, Field(discriminator="type")]


# -- ACE basis ------------------------------------------------------------------------------------


class EmbeddingSettings(StrictModel):
    """Embedding function of each element: F(rho) = sum_k c_k * rho_k ** p_k."""

    npot: Literal["FinnisSinclairShiftedScaled", "FinnisSinclair"] = Field(
        "FinnisSinclairShiftedScaled", description="form of the embedding function (pacemaker)"
    )
    fs_parameters: list[float] = Field(
        default_factory=lambda: [1.0, 1.0, 1.0, 0.5],
        description="pairs (c_k, p_k), one pair per density",
    )
    ndensity: PositiveInt = Field(2, description="number of densities rho_k")

    @model_validator(mode="after")
    def _two_parameters_per_density(self) -> EmbeddingSettings:
        if len(self.fs_parameters) != 2 * self.ndensity:
            raise ValueError(
                f"fs_parameters needs 2 values per density: {2 * self.ndensity} for "
                f"ndensity={self.ndensity}, got {len(self.fs_parameters)}"
            )
        return self


class RadialBasisSettings(StrictModel):
    """Radial basis of the bonds."""

    radbase: Literal["SBessel", "ChebExpCos", "ChebPow"] = Field(
        "SBessel", description="radial basis functions (pacemaker)"
    )
    radparameters: list[float] = Field(
        default_factory=lambda: [5.25], description="parameters of the radial basis"
    )
    dcut: PositiveFloat = Field(0.01, description="Å, width of the smooth outer cutoff")


class AceParams(StrictModel):
    """Shape and size of the ACE basis.

    ``nradmax_by_orders``/``lmax_by_orders`` give the pool of basis functions per body order
    (first entry: pair term). Left unset, pacemaker's recommended pools are used for every
    species combination (unary to quinary). ``number_of_functions_per_element`` then trims the
    pool to the most important functions; left unset, it grows with the atomic environments
    of the dataset, per species block.
    """

    number_of_functions_per_element: PositiveInt | None = Field(
        None,
        description=(
            "basis size per element; None: 3 * sqrt(atoms per element), at least 6 per "
            "species block (2**(n-1) blocks per element for n elements), at most the atoms "
            "per element and 700 (README, 'Basis size')"
        ),
    )
    nradmax_by_orders: list[PositiveInt] | None = Field(
        None,
        description="largest radial index per body order; None: pacemaker's recommended pools",
    )
    lmax_by_orders: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="largest angular momentum per body order (with nradmax_by_orders)"
    )
    embedding: EmbeddingSettings = Field(
        default_factory=EmbeddingSettings, description="embedding function of every element"
    )
    radial: RadialBasisSettings = Field(
        default_factory=RadialBasisSettings, description="radial basis of every bond"
    )

    @model_validator(mode="after")
    def _orders_match(self) -> AceParams:
        if (self.nradmax_by_orders is None) != (self.lmax_by_orders is None):
            raise ValueError("give both nradmax_by_orders and lmax_by_orders, or neither")
        if (
            self.nradmax_by_orders is not None
            and self.lmax_by_orders is not None
            and len(self.nradmax_by_orders) != len(self.lmax_by_orders)
        ):
            raise ValueError(
                f"nradmax_by_orders ({len(self.nradmax_by_orders)} orders) and lmax_by_orders "
                f"({len(self.lmax_by_orders)} orders) must have the same length"
            )
        return self


# -- fit ------------------------------------------------------------------------------------------


class FitSettings(StrictModel):
    """Loss, optimiser and data split of the fit."""

    maxiter: Annotated[PositiveInt, NotBool] = Field(
        1500, description="maximum optimiser iterations"
    )
    kappa: Annotated[float, NotBool, Field(ge=0.0, le=1.0)] | Literal["auto"] = Field(
        0.3, description="relative weight of forces in the loss (0: energies only, 1: forces only)"
    )
    L1_coeffs: Annotated[float, Field(ge=0.0)] = Field(1e-8, description="L1 regularisation")
    L2_coeffs: Annotated[float, Field(ge=0.0)] = Field(1e-8, description="L2 regularisation")
    optimizer: Literal["BFGS", "L-BFGS-B"] = Field(
        "BFGS", description="scipy optimiser (L-BFGS-B needs less memory for large bases)"
    )
    weighting: Literal["uniform", "energy_based"] = Field(
        "uniform",
        description=(
            "uniform: every structure counts the same; energy_based: pacemaker's "
            "EnergyBasedWeightingPolicy (favours low-energy structures, drops those above "
            "E_min + 10 eV/atom). Per-structure weights in the dataset take precedence."
        ),
    )
    test_size: Annotated[float, NotBool, Field(ge=0.0, lt=1.0)] = Field(
        0.1, description="fraction of the structures held out as test set (0: none)"
    )
    seed: int = Field(42, description="random seed of the test split and the fit")
    batch_size: PositiveInt = Field(100, description="structures per evaluation batch")
    display_step: PositiveInt = Field(
        50, description="iterations between detailed metrics in pacemaker's log"
    )
    time_budget: PositiveFloat | None = Field(
        None,
        description=(
            "s of wall time for the whole training (also '90s', '30min', '2h', '1:30:00'): "
            "the iterations (and, if number_of_functions_per_element is not given, the basis "
            "size) are chosen from a measured cost estimate, and the fit is stopped at the "
            "budget with the potential of its last iteration; maxiter, if given, stays an upper "
            "bound. None: no budget"
        ),
    )

    early_stop_patience: Annotated[PositiveInt, NotBool] | None = Field(
        None,
        description=(
            "stop the fit when the test loss (the train loss without a test set) has not "
            "improved by early_stop_min_improvement in this many evaluations in a row (an "
            "evaluation every display_step iterations): pacemaker's own early stopping. "
            "None: run to maxiter or the time budget"
        ),
    )
    early_stop_min_improvement: Annotated[float, NotBool, Field(gt=0.0, lt=1.0)] = Field(
        1e-3,
        description=(
            "with early_stop_patience: the relative fall of the loss from one evaluation to "
            "the next below which the evaluation counts as no improvement (0.001: 0.1 %)"
        ),
    )

    @field_validator("time_budget", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


_DURATION_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}
_DURATION = re.compile(r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[a-z]*)\s*$")


def parse_duration(text: str) -> float:
    """Seconds of a duration written as '90', '90s', '30min', '2h', '1.5h', '1:30:00' or '45:00'."""
    if ":" in text:
        parts = text.strip().split(":")
        if len(parts) in (2, 3) and all(part.isdigit() for part in parts):
            seconds = 0.0
            for part in parts:
                seconds = 60 * seconds + int(part)
            return seconds
        raise ValueError(f"'{text}' is not a duration like 1:30:00 (h:min:s) or 45:00 (min:s)")
    match = _DURATION.match(text.lower())
    if match is None or match["unit"] not in {"", *_DURATION_UNITS}:
        raise ValueError(
            f"'{text}' is not a duration: use seconds (5400) or e.g. '90s', '30min', '2h', "
            "'1:30:00'"
        )
    return float(match["number"]) * _DURATION_UNITS.get(match["unit"], 1.0)


class ActiveSetSettings(StrictModel):
    """Active sets: D-optimal selection of the training structures before the fit (pace_select,
    off by default), and the active set of the fitted potential (pace_activeset, always).

    The structures whose atomic environments add most to the volume spanned by the ACE basis
    projections (MaxVol) are kept; the fit then runs on them alone. Selection repeats on the
    structures left until the requested number is reached.
    """

    enabled: bool = Field(False, description="select the training structures before the fit")
    max_structures: Annotated[PositiveInt, NotBool] | None = Field(
        None, description="number of structures to keep"
    )
    fraction: Annotated[float, NotBool, Field(gt=0.0, le=1.0)] | None = Field(
        None, description="fraction of the structures to keep, in (0, 1]"
    )
    max_atoms: PositiveInt | None = Field(
        None,
        description=(
            "atoms to keep: a cost budget (a fit's time per iteration grows with its atoms; "
            "D-optimality by structures favours large ones)"
        ),
    )
    batch_size: PositiveInt | None = Field(
        None, description="structures per batch of pace_select (bounds its memory); None: all"
    )
    gamma_tolerance: Annotated[float, NotBool, Field(ge=1.0)] = Field(
        1.01, description="MaxVol tolerance of pace_select and pace_activeset"
    )
    all_atoms: bool = Field(
        True,
        description=(
            "build the fitted potential's active set from every training atom, so training "
            "structures grade gamma <= gamma_tolerance; false: pacemaker's default, which leaves "
            "out atoms with outlying force errors (they then grade as extrapolative)"
        ),
    )
    previous_potential: Path | None = Field(
        None,
        description=(
            "run directory of the previous generation's potential: the selection then adds to "
            "what its active set already covers"
        ),
    )

    @model_validator(mode="after")
    def _one_size(self) -> ActiveSetSettings:
        sizes = [self.max_structures, self.fraction, self.max_atoms]
        if sum(size is not None for size in sizes) > 1:
            raise ValueError("give one of max_structures, fraction or max_atoms, not both")
        if self.enabled and all(size is None for size in sizes):
            raise ValueError("an enabled selection needs max_structures or fraction (or max_atoms)")
        return self


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
            "(README, 'On a cluster')"
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
            unknown = sorted(key for key in value if key not in _ELEMENTS)
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


def _problems(error: ValidationError, raw: Any) -> list[tuple[str, str]]:
    problems = []
    for detail in error.errors(include_url=False):
        path = _field_path(detail["loc"], raw)
        reason = detail["msg"].removeprefix("Value error, ")
        if detail["type"] not in {"missing", "extra_forbidden"} and "input" in detail:
            reason += f" (got {detail['input']!r})"
        problems.append((path, reason))
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
