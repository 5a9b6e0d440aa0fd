"""Configuration of the active-learning loop: the file ``loop.yaml`` (trainer, oracle, explorer,
loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, PositiveFloat, PositiveInt, ValidationError, field_validator

from mlip_autopipec.config.base import NotBool, StrictModel
from mlip_autopipec.config.config_model import TrainerConfig, _problems
from mlip_autopipec.config.durations import parse_duration
from mlip_autopipec.config.explorer import ExplorerConfig
from mlip_autopipec.config.oracle import OracleConfig
from mlip_autopipec.errors import ConfigurationError


class InitialStructures(StrictModel):
    """Generation 0 without ``--data``: rattled and strained copies of the starting structures,
    labelled by the oracle (the seed of pacemaker's and DP-GEN's recipes: a small, varied set)."""

    copies_per_structure: Annotated[PositiveInt, NotBool] = Field(
        8,
        description="rattled/strained copies of each starting structure (labelled with it)",
    )
    rattle_stdev: Annotated[float, NotBool, Field(ge=0.0, le=0.5)] = Field(
        0.05, description="Å, standard deviation of the random displacement of every atom"
    )
    max_strain: Annotated[float, NotBool, Field(ge=0.0, le=0.2)] = Field(
        0.03,
        description="largest relative strain of a periodic cell (uniform in [-max, max] per "
        "component); non-periodic structures are only rattled",
    )
    seed: int = Field(0, description="random seed of the rattles and strains")


class LoopSettings(StrictModel):
    """When the loop stops and how much it labels per iteration (the ``loop:`` section).

    Defaults follow the anchors: at most 20 new labels per iteration (DP-GEN's ``fp_task_max``
    of its examples), converged when every trajectory runs its full length and at most 1 % of
    the checked MD frames exceed the explorer's lower gamma threshold (a stray frame just above
    it is not worth a generation; DP-GEN's ">= 90 % accurate" is ``converged_fraction: 0.1``).
    """

    max_iterations: Annotated[PositiveInt, NotBool] = Field(
        10,
        description="generations trained after generation 0 (the last one is explored too, "
        "to tell whether it converged)",
    )
    max_oracle_calls: Annotated[PositiveInt, NotBool] | None = Field(
        None,
        description="oracle calculations in all (generation 0 included); the selection of an "
        "iteration is cut to what is left. None: no cap",
    )
    max_wall_time: PositiveFloat | None = Field(
        None,
        description="s of wall time of the whole loop over all its sessions (also '30min', "
        "'12h', '1:30:00'); checked between steps. None: no cap",
    )
    generation_time_budget: PositiveFloat | None = Field(
        None,
        description="s of wall time for each generation's fit (the trainer's fit.time_budget "
        "of that fit; also '10min'). None: the trainer section's own fit settings",
    )
    max_selected_structures: Annotated[PositiveInt, NotBool] | None = Field(
        20, description="new structures labelled per iteration at most (DP-GEN: fp_task_max)"
    )
    max_selected_atoms: Annotated[PositiveInt, NotBool] | None = Field(
        None, description="atoms in the new structures of an iteration at most (a cost cap)"
    )
    converged_fraction: Annotated[float, NotBool, Field(ge=0.0, lt=1.0)] = Field(
        0.01,
        description="converged when every trajectory ran its full length and at most this "
        "fraction of the checked frames exceeded explorer.gamma_lower (0: none may)",
    )
    initial_structures: InitialStructures = Field(
        default_factory=InitialStructures, description="generation 0 when no --data is given"
    )

    @field_validator("max_wall_time", "generation_time_budget", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class LoopConfig(StrictModel):
    """The whole ``loop.yaml``: the trainer, the oracle, the explorer and the loop's settings."""

    trainer: TrainerConfig
    oracle: OracleConfig
    explorer: ExplorerConfig
    loop: LoopSettings = Field(default_factory=LoopSettings)


def parse_loop_config(raw: dict[str, Any], *, source: str | Path | None = None) -> LoopConfig:
    """Validate a loop config mapping (as read from YAML); errors name each field."""
    try:
        return LoopConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigurationError(_problems(error, raw), source=source) from None


def load_loop_config(path: str | Path) -> LoopConfig:
    """Read and validate ``loop.yaml``; every problem is reported with its field path."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigurationError([(str(path), "file does not exist")]) from error
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError([(str(path), f"cannot be read: {error}")]) from error
    except yaml.YAMLError as error:
        raise ConfigurationError([(str(path), f"not valid YAML: {error}")]) from error
    if not isinstance(raw, dict):
        raise ConfigurationError(
            [("<top level>", "expected a mapping with trainer, oracle, explorer, loop sections")],
            source=path,
        )
    return parse_loop_config(raw, source=path)
