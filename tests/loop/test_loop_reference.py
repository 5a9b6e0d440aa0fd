"""docs/loop_configuration.md is generated from the loop's config models and stays current."""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.config.loop import LoopSettings
from mlip_autopipec.config_reference import render_loop_reference

REFERENCE = Path(__file__).parents[2] / "docs" / "loop_configuration.md"


def test_the_loop_reference_is_current() -> None:
    assert REFERENCE.read_text() == render_loop_reference(), (
        "docs/loop_configuration.md is stale: run "
        "`python -m mlip_autopipec.config_reference loop > docs/loop_configuration.md`"
    )


def test_every_loop_setting_is_documented() -> None:
    text = render_loop_reference()
    for name, field in LoopSettings.model_fields.items():
        assert f"| `{name}` |" in text
        assert field.description, f"loop.{name} has no description"
    assert "## `loop.initial_structures`" in text and "## `explorer`" in text
