"""The one duration parser (every form a config may give) and the one formatter."""

from __future__ import annotations

import pytest

from mlip_autopipec.config.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("30min", 1800.0),
        ("2h", 7200.0),
        ("1.5h", 5400.0),
        ("45:00", 2700.0),
        ("1:30:00", 5400.0),
        ("1-00:00:00", 86400.0),
        ("2-12:00:05", 2 * 86400.0 + 12 * 3600 + 5),
    ],
)
def test_every_form_is_read(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "12 parsecs", "1:60:00", "1:00:60", "-1:00:00", "1-45:00"])
def test_a_bad_duration_says_which_forms_there_are(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.35, "0s"), (5, "5s"), (44.6, "45s"), (65, "1m05s"), (3780, "1h03m"), (-1, "0s")],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
