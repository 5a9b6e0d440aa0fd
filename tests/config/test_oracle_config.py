"""The oracle's config: the calculator's import path is checked when the config is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlip_autopipec.config.oracle import OracleConfig

FAKE = Path(__file__).parents[1] / "oracle" / "fake_calculators.py"


def test_a_calculator_by_module_path_or_file_path() -> None:
    emt = OracleConfig(calculator="ase.calculators.emt.EMT")
    assert type(emt.make_calculator()).__name__ == "EMT"
    flaky = OracleConfig(calculator=f"{FAKE}:FlakyEMT", parameters={"count_file": "x"})
    assert type(flaky.make_calculator()).__name__ == "FlakyEMT"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "ase.calculators.no_such_module.EMT",
            "cannot import module 'ase.calculators.no_such_module'",
        ),
        (
            "ase.calculators.emt.NoSuchCalculator",
            "module 'ase.calculators.emt' has no 'NoSuchCalculator'",
        ),
        ("EMT", "'EMT' is not an import path"),
        ("/no/such/file.py:EMT", "file /no/such/file.py does not exist"),
        ("ase.calculators.emt.parameters", "is not a class or function"),
    ],
)
def test_a_missing_calculator_is_an_error_naming_the_field(path: str, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OracleConfig(calculator=path)
    error = caught.value.errors()[0]
    assert error["loc"] == ("calculator",)
    assert expected in error["msg"]


def test_defaults_and_limits() -> None:
    config = OracleConfig(calculator="ase.calculators.emt.EMT")
    assert 1 <= config.workers <= 2
    assert config.max_failure_fraction == 0.2 and config.execution is None
    with pytest.raises(ValidationError, match="max_failure_fraction"):
        OracleConfig(calculator="ase.calculators.emt.EMT", max_failure_fraction=1.0)
    with pytest.raises(ValidationError, match="extra"):
        OracleConfig(calculator="ase.calculators.emt.EMT", worker=2)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="JSON-like"):
        OracleConfig(calculator="ase.calculators.emt.EMT", parameters={"x": object()})
    with pytest.raises(ValidationError, match="workers"):
        OracleConfig(calculator="ase.calculators.emt.EMT", workers=True)


def test_the_identity_changes_with_the_parameters_only() -> None:
    one = OracleConfig(calculator="ase.calculators.emt.EMT", workers=1)
    assert (
        one.identity() == OracleConfig(calculator="ase.calculators.emt.EMT", workers=2).identity()
    )
    other = OracleConfig(calculator="ase.calculators.emt.EMT", parameters={"asap_cutoff": True})
    assert other.identity() != one.identity()


def test_every_field_has_a_description() -> None:
    assert all(field.description for field in OracleConfig.model_fields.values())
