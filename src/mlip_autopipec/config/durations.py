"""Durations: the one parser of the durations a config may give, and the one way they are shown.

Accepted (seconds as a float): a number of seconds (``5400``, ``'90'``), a number with a unit
(``'90s'``, ``'30min'``, ``'2h'``, ``'1.5h'``), or a clock ``'[days-]hours:minutes:seconds'``
(``'1:30:00'``, ``'1-00:00:00'``) or ``'minutes:seconds'`` (``'45:00'``).
"""

from __future__ import annotations

import math
import re

_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}
_NUMBER = re.compile(r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[a-z]*)\s*$")
_CLOCK = re.compile(r"^\s*(?:(?P<days>\d+)-)?(?P<clock>\d+(?::\d\d){1,2})\s*$")
#: The clock a batch scheduler's time limit is written as: ``[days-]hours:minutes:seconds``.
SCHEDULER_CLOCK = re.compile(r"^\s*(?:\d+-)?\d+:\d\d:\d\d\s*$")


def parse_duration(text: str) -> float:
    """Seconds of ``text`` (the forms of this module's docstring); ValueError naming the forms
    when it is none of them (minutes and seconds of a clock are at most 59)."""
    clock = _CLOCK.match(text)
    if clock is not None:
        parts = [int(part) for part in clock["clock"].split(":")]
        if clock["days"] is not None and len(parts) != 3:
            raise ValueError(f"'{text}' is not a duration: days go with hours:minutes:seconds")
        if any(part > 59 for part in parts[1:]):
            raise ValueError(f"'{text}' is not a duration: minutes and seconds go to 59")
        seconds = 0.0
        for part in parts:
            seconds = 60 * seconds + part
        return seconds + 86400.0 * int(clock["days"] or 0)
    number = _NUMBER.match(text.lower())
    if number is None or number["unit"] not in {"", *_UNITS}:
        raise ValueError(
            f"'{text}' is not a duration: use seconds (5400) or e.g. '90s', '30min', '2h', "
            "'1:30:00' (h:min:s), '45:00' (min:s) or '1-00:00:00' (days-h:min:s)"
        )
    return float(number["number"]) * _UNITS.get(number["unit"], 1.0)


def format_duration(seconds: float) -> str:
    """A duration in seconds as 45s, 1m05s or 2h03m (0s for none)."""
    total = round(seconds) if math.isfinite(seconds) and seconds > 0 else 0
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
