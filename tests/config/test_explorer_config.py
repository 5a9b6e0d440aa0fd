"""The explorer's config: pacemaker's thresholds by default, conditions, checked limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlip_autopipec.config.explorer import ExplorerConfig


def test_defaults_follow_pacemakers_recipe() -> None:
    config = ExplorerConfig(temperatures_K=[300.0])
    assert (config.gamma_lower, config.gamma_upper) == (1.5, 25.0)
    assert config.timestep_fs == 1.0 and config.check_every == 10
    assert config.min_distance_factor == 0.5 and config.min_distance_A is None
    assert 1 <= config.workers <= 2


def test_conditions_are_every_temperature_at_every_pressure() -> None:
    assert ExplorerConfig(temperatures_K=[300.0, 600.0]).conditions() == [
        (300.0, None),
        (600.0, None),
    ]
    config = ExplorerConfig(temperatures_K=[300.0, 600.0], pressures_GPa=[0.0, 2.0])
    assert config.conditions() == [(300.0, 0.0), (300.0, 2.0), (600.0, 0.0), (600.0, 2.0)]


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"temperatures_K": []}, "temperatures_K"),
        ({"temperatures_K": [-5.0]}, "temperatures_K"),
        ({"pressures_GPa": []}, "pressures_GPa"),
        ({"steps": 0}, "steps"),
        ({"steps": True}, "steps"),
        ({"min_distance_factor": 1.5}, "min_distance_factor"),
        ({"gamma_lower": 30.0}, "gamma_upper (25) must exceed gamma_lower (30)"),
        ({"temperature": 300.0}, "temperature"),
    ],
)
def test_bad_values_are_refused_naming_the_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field.replace("(", r"\(").replace(")", r"\)")):
        ExplorerConfig(**{"temperatures_K": [300.0], **settings})  # type: ignore[arg-type]


def test_every_field_has_a_description() -> None:
    assert all(field.description for field in ExplorerConfig.model_fields.values())
