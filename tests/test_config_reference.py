"""docs/configuration.md is generated from the config models and must stay current."""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.config.config_model import TrainerConfig
from mlip_autopipec.config_reference import render_reference

REFERENCE = Path(__file__).parents[1] / "docs" / "configuration.md"


def test_the_reference_is_current() -> None:
    assert REFERENCE.read_text() == render_reference(), (
        "docs/configuration.md is stale: run "
        "`python -m mlip_autopipec.config_reference > docs/configuration.md`"
    )


def test_every_field_is_documented_with_a_meaning() -> None:
    text = render_reference()
    for name, field in TrainerConfig.model_fields.items():
        assert f"| `{name}` |" in text
        assert field.description, f"trainer.{name} has no description"
    assert "## `trainer.active_set`" in text
    assert "## `trainer.b_ref (type: zbl)`" in text
    assert "| `inner_cutoff` | float \\| null | `null` |" in text
