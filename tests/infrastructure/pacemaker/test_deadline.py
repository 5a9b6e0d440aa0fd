"""The callback that ends a pacemaker fit at its deadline."""

from __future__ import annotations

import time

import pytest

from mlip_autopipec.infrastructure.pacemaker import deadline as fit_deadline
from mlip_autopipec.infrastructure.pacemaker.deadline import (
    CALLBACK_NAME,
    DEADLINE_ENV,
    STOP_MARKER,
    stop_at_deadline,
)


@pytest.fixture(autouse=True)
def fresh_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fit_deadline._Clock, "previous", None)


def _call() -> None:
    # As pacemaker's GeneralACEFit.callback_hook calls it.
    stop_at_deadline(
        basis_config=None, current_fit_iteration=7, current_fit_cycle=0, current_ladder_step=0
    )


def test_a_passed_deadline_stops_the_fit_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(DEADLINE_ENV, repr(time.time() - 1))
    with pytest.raises(StopIteration):
        _call()
    assert f"{STOP_MARKER} after iteration 7" in capsys.readouterr().out


def test_a_distant_deadline_or_none_lets_the_fit_go_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    _call()  # would raise StopIteration if it stopped the fit
    monkeypatch.setenv(DEADLINE_ENV, repr(time.time() + 3600))
    _call()
    _call()
    assert STOP_MARKER not in capsys.readouterr().out
    assert fit_deadline._Clock.previous is not None  # the iterations were timed


def test_it_stops_when_the_next_iteration_would_end_after_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = 1000.0
    monkeypatch.setattr(fit_deadline.time, "time", lambda: now)
    monkeypatch.setenv(DEADLINE_ENV, "1015")
    _call()  # t=1000: no iteration seen yet
    now = 1010.0  # that iteration took 10 s: the next would end at 1020 > 1015
    with pytest.raises(StopIteration):
        _call()


def test_the_callback_name_imports_as_pacemaker_imports_it() -> None:
    # pacemaker's active_import: __import__ the first part, then getattr along the name.
    parts = CALLBACK_NAME.split(".")
    found = __import__(parts[0])
    for part in parts[1:]:
        found = getattr(found, part)
    assert found is stop_at_deadline
