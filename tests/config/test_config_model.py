"""The Trainer's configuration: defaults, and every invalid value reported with its field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlip_autopipec.config.config_model import (
    Executables,
    LJBaseline,
    NoBaseline,
    PipelineConfig,
    TrainerConfig,
    ZBLBaseline,
    load_config,
    parse_config,
    parse_trainer_config,
)
from mlip_autopipec.errors import ConfigurationError

MINIMAL: dict[str, Any] = {"type": "pacemaker", "cutoff": 5.0}


def trainer(**changes: Any) -> dict[str, Any]:
    """The minimal trainer section with ``changes`` applied."""
    return {**MINIMAL, **changes}


def problems_of(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """The (path, reason) problems of an invalid trainer section."""
    with pytest.raises(ConfigurationError) as caught:
        parse_trainer_config(raw)
    assert caught.value.problems, "a ConfigurationError must list its problems"
    return caught.value.problems


def only_problem(raw: dict[str, Any]) -> tuple[str, str]:
    problems = problems_of(raw)
    assert len(problems) == 1, problems
    return problems[0]


# -- valid configurations ------------------------------------------------------------------------


def test_minimal_config_has_documented_defaults() -> None:
    config = parse_trainer_config(dict(MINIMAL))

    assert isinstance(config, TrainerConfig)
    assert config.type == "pacemaker"
    assert config.cutoff == 5.0
    assert config.b_ref == ZBLBaseline()  # per-pair cutoffs from the data
    assert config.reference_energies == "auto"
    assert config.time_limit_seconds is None
    assert config.threads is None
    assert config.gpu_devices is None
    assert config.executables == Executables()
    assert config.executables.pacemaker == "pacemaker"
    assert config.executables.pace_yaml2yace == "pace_yaml2yace"
    # ACE basis: pools left to pacemaker, embedding with two densities.
    assert config.ace_params.number_of_functions_per_element is None
    assert config.ace_params.nradmax_by_orders is None
    assert config.ace_params.lmax_by_orders is None
    assert config.ace_params.embedding.ndensity == 2
    assert config.ace_params.embedding.fs_parameters == [1.0, 1.0, 1.0, 0.5]
    assert config.ace_params.radial.radbase == "SBessel"
    # Fit.
    assert config.fit.maxiter == 1500
    assert config.fit.kappa == 0.3
    assert config.fit.test_size == 0.1
    assert config.fit.seed == 42
    assert config.fit.weighting == "uniform"
    assert config.fit.optimizer == "BFGS"


def test_default_lists_are_not_shared_between_configs() -> None:
    first = parse_trainer_config(dict(MINIMAL))
    second = parse_trainer_config(dict(MINIMAL))
    first.ace_params.embedding.fs_parameters.append(7.0)

    assert second.ace_params.embedding.fs_parameters == [1.0, 1.0, 1.0, 0.5]


def test_mock_type_is_accepted() -> None:
    assert parse_trainer_config(trainer(type="mock")).type == "mock"


def test_parse_config_returns_the_whole_pipeline_config() -> None:
    config = parse_config({"trainer": dict(MINIMAL)})

    assert isinstance(config, PipelineConfig)
    assert config.trainer.cutoff == 5.0


def test_full_config_keeps_every_value() -> None:
    config = parse_trainer_config(
        trainer(
            b_ref={"type": "zbl", "inner_cutoff": 1.0, "outer_cutoff": 2.0},
            ace_params={
                "number_of_functions_per_element": 50,
                "nradmax_by_orders": [15, 3, 2],
                "lmax_by_orders": [0, 2, 1],
                "embedding": {"ndensity": 1, "fs_parameters": [1, 1]},
            },
            fit={"kappa": "auto", "maxiter": 10, "test_size": 0.0, "seed": 7},
            reference_energies={"Cu": -3.5, "Pt": -5.1},
            executables={"pacemaker": "/opt/pace/bin/pacemaker"},
            time_limit_seconds=3600,
            threads=4,
            gpu_devices="",
        )
    )

    assert config.b_ref == ZBLBaseline(inner_cutoff=1.0, outer_cutoff=2.0)
    assert config.ace_params.nradmax_by_orders == [15, 3, 2]
    assert config.ace_params.lmax_by_orders == [0, 2, 1]
    assert config.ace_params.embedding.fs_parameters == [1.0, 1.0]
    assert config.fit.kappa == "auto"
    assert config.fit.test_size == 0.0
    assert config.reference_energies == {"Cu": -3.5, "Pt": -5.1}
    assert config.executables.pacemaker == "/opt/pace/bin/pacemaker"
    assert config.executables.pace_select == "pace_select"
    assert config.time_limit_seconds == 3600.0
    assert config.threads == 4
    assert config.gpu_devices == ""


# -- unknown keys ---------------------------------------------------------------------------------


def test_unknown_top_level_key_is_rejected_with_its_path() -> None:
    assert only_problem(trainer(cutof=5.0)) == ("trainer.cutof", "Extra inputs are not permitted")


def test_unknown_nested_key_is_rejected_with_its_path() -> None:
    assert only_problem(trainer(ace_params={"foo": 1})) == (
        "trainer.ace_params.foo",
        "Extra inputs are not permitted",
    )


def test_unknown_deeply_nested_key_is_rejected_with_its_path() -> None:
    path, _ = only_problem(trainer(ace_params={"embedding": {"npots": "FinnisSinclair"}}))
    assert path == "trainer.ace_params.embedding.npots"


def test_unknown_section_beside_trainer_is_rejected() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_config({"trainer": dict(MINIMAL), "trainr": {}})
    assert caught.value.problems == [("trainr", "Extra inputs are not permitted")]


def test_missing_required_fields_are_named() -> None:
    assert sorted(problems_of({})) == [
        ("trainer.cutoff", "Field required"),
        ("trainer.type", "Field required"),
    ]


def test_every_problem_is_reported_at_once() -> None:
    paths = {path for path, _ in problems_of(trainer(cutoff=-1, type="x", fit={"kappa": 2}))}
    assert {"trainer.cutoff", "trainer.type", "trainer.fit.kappa"} <= paths


# -- scalar fields --------------------------------------------------------------------------------


@pytest.mark.parametrize("cutoff", [0, -2.5])
def test_cutoff_must_be_positive(cutoff: float) -> None:
    path, reason = only_problem(trainer(cutoff=cutoff))
    assert path == "trainer.cutoff"
    assert "greater than 0" in reason
    assert f"got {cutoff!r}" in reason


def test_type_must_be_mock_or_pacemaker() -> None:
    path, reason = only_problem(trainer(type="mace"))
    assert path == "trainer.type"
    assert "'mock'" in reason and "'pacemaker'" in reason
    assert "got 'mace'" in reason


# -- baselines ------------------------------------------------------------------------------------


def test_zbl_baseline_with_cutoffs_from_the_data() -> None:
    config = parse_trainer_config(trainer(b_ref={"type": "zbl"}))
    assert config.b_ref == ZBLBaseline(inner_cutoff=None, outer_cutoff=None)


def test_zbl_inner_not_below_outer_is_rejected_naming_both_values() -> None:
    path, reason = only_problem(
        trainer(b_ref={"type": "zbl", "inner_cutoff": 2.0, "outer_cutoff": 1.5})
    )
    assert path == "trainer.b_ref"
    assert "inner_cutoff (2.0 Å)" in reason
    assert "outer_cutoff (1.5 Å)" in reason


def test_zbl_inner_equal_to_outer_is_rejected() -> None:
    path, reason = only_problem(
        trainer(b_ref={"type": "zbl", "inner_cutoff": 1.5, "outer_cutoff": 1.5})
    )
    assert path == "trainer.b_ref"
    assert "must be smaller than outer_cutoff" in reason


def test_zbl_outer_beyond_the_ace_cutoff_is_rejected() -> None:
    path, reason = only_problem(
        trainer(cutoff=5.0, b_ref={"type": "zbl", "inner_cutoff": 1.0, "outer_cutoff": 6.0})
    )
    assert path == "trainer.b_ref"
    assert "outer_cutoff (6.0 Å)" in reason
    assert "ACE cutoff" in reason
    assert "5.0 Å" in reason


def test_zbl_outer_equal_to_the_ace_cutoff_is_accepted() -> None:
    config = parse_trainer_config(trainer(cutoff=5.0, b_ref={"type": "zbl", "outer_cutoff": 5.0}))
    assert isinstance(config.b_ref, ZBLBaseline)
    assert config.b_ref.outer_cutoff == 5.0


def test_zbl_inner_beyond_the_ace_cutoff_is_rejected() -> None:
    path, reason = only_problem(trainer(cutoff=5.0, b_ref={"type": "zbl", "inner_cutoff": 5.5}))
    assert path == "trainer.b_ref"
    assert "inner_cutoff (5.5 Å)" in reason
    assert "ACE cutoff" in reason


def test_negative_zbl_inner_cutoff_has_the_users_path_without_union_tag() -> None:
    path, reason = only_problem(trainer(b_ref={"type": "zbl", "inner_cutoff": -1.0}))
    assert path == "trainer.b_ref.inner_cutoff"
    assert "greater than 0" in reason


def test_unknown_key_in_baseline_has_the_users_path() -> None:
    path, _ = only_problem(trainer(b_ref={"type": "zbl", "outer": 2.0}))
    assert path == "trainer.b_ref.outer"


def test_lj_baseline_accepts_elements_and_pairs() -> None:
    config = parse_trainer_config(
        trainer(
            b_ref={
                "type": "lj",
                "epsilon": {"Cu": 0.4, "Cu-Pt": 0.5},
                "sigma": {"Cu": 2.3, "Pt": 2.5},
                "cutoff": 4.0,
            }
        )
    )
    assert isinstance(config.b_ref, LJBaseline)
    assert config.b_ref.epsilon == {"Cu": 0.4, "Cu-Pt": 0.5}
    assert config.b_ref.shift is True


@pytest.mark.parametrize("key", ["Xx", "Cu-Pt-Fe", "Cu-Qq", "cu"])
def test_lj_key_that_is_neither_element_nor_pair_is_rejected(key: str) -> None:
    path, reason = only_problem(
        trainer(b_ref={"type": "lj", "epsilon": {key: 0.4}, "sigma": {"Cu": 2.3}, "cutoff": 4.0})
    )
    assert path == "trainer.b_ref.epsilon"
    assert f"key '{key}'" in reason
    assert "neither an element symbol" in reason


def test_lj_non_positive_parameter_is_named_by_its_key() -> None:
    path, reason = only_problem(
        trainer(b_ref={"type": "lj", "epsilon": {"Cu": -0.4}, "sigma": {"Cu": 2.3}, "cutoff": 4.0})
    )
    assert path == "trainer.b_ref.epsilon.Cu"
    assert "greater than 0" in reason


def test_lj_without_cutoff_names_the_missing_field() -> None:
    assert only_problem(
        trainer(b_ref={"type": "lj", "epsilon": {"Cu": 0.4}, "sigma": {"Cu": 2.3}})
    ) == ("trainer.b_ref.cutoff", "Field required")


def test_no_baseline() -> None:
    assert isinstance(parse_trainer_config(trainer(b_ref={"type": "none"})).b_ref, NoBaseline)


def test_none_baseline_takes_no_parameters() -> None:
    path, _ = only_problem(trainer(b_ref={"type": "none", "cutoff": 2.0}))
    assert path == "trainer.b_ref.cutoff"


def test_unknown_baseline_type_lists_the_known_ones() -> None:
    path, reason = only_problem(trainer(b_ref={"type": "morse"}))
    assert path == "trainer.b_ref"
    assert "'morse'" in reason
    assert "'zbl'" in reason and "'lj'" in reason and "'none'" in reason


def test_baseline_without_type_is_rejected() -> None:
    path, reason = only_problem(trainer(b_ref={"inner_cutoff": 1.0}))
    assert path == "trainer.b_ref"
    assert "'type'" in reason


# -- ACE basis ------------------------------------------------------------------------------------


def test_fs_parameters_must_have_two_values_per_density() -> None:
    path, reason = only_problem(
        trainer(ace_params={"embedding": {"ndensity": 1, "fs_parameters": [1.0, 1.0, 1.0, 0.5]}})
    )
    assert path == "trainer.ace_params.embedding"
    assert "2 values per density" in reason
    assert "ndensity=1" in reason
    assert "got 4" in reason


def test_nradmax_without_lmax_is_rejected() -> None:
    path, reason = only_problem(trainer(ace_params={"nradmax_by_orders": [15, 3]}))
    assert path == "trainer.ace_params"
    assert "give both nradmax_by_orders and lmax_by_orders" in reason


def test_lmax_without_nradmax_is_rejected() -> None:
    path, reason = only_problem(trainer(ace_params={"lmax_by_orders": [0, 3]}))
    assert path == "trainer.ace_params"
    assert "give both nradmax_by_orders and lmax_by_orders" in reason


def test_orders_of_different_lengths_are_rejected() -> None:
    path, reason = only_problem(
        trainer(ace_params={"nradmax_by_orders": [15, 3, 2], "lmax_by_orders": [0, 3]})
    )
    assert path == "trainer.ace_params"
    assert "nradmax_by_orders (3 orders)" in reason
    assert "lmax_by_orders (2 orders)" in reason


def test_negative_lmax_is_named_by_its_list_index() -> None:
    path, reason = only_problem(
        trainer(ace_params={"nradmax_by_orders": [15, 3], "lmax_by_orders": [0, -1]})
    )
    assert path == "trainer.ace_params.lmax_by_orders[1]"
    assert "greater than or equal to 0" in reason


# -- fit ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kappa", [-0.1, 1.5])
def test_kappa_outside_zero_one_is_rejected(kappa: float) -> None:
    problems = problems_of(trainer(fit={"kappa": kappa}))
    # kappa is 'float in [0, 1] or "auto"': each reason is on the user's path, without the tags
    # pydantic gives the members of the union.
    assert {path for path, _ in problems} == {"trainer.fit.kappa"}
    reasons = " | ".join(reason for _, reason in problems)
    assert "or equal to" in reasons
    assert "'auto'" in reasons
    assert f"got {kappa!r}" in reasons


@pytest.mark.parametrize("kappa", [0, 0.0, 1, 0.5, "auto"])
def test_kappa_in_range_or_auto_is_accepted(kappa: float | str) -> None:
    assert parse_trainer_config(trainer(fit={"kappa": kappa})).fit.kappa == kappa


def test_test_size_of_one_is_rejected() -> None:
    path, reason = only_problem(trainer(fit={"test_size": 1.0}))
    assert path == "trainer.fit.test_size"
    assert "less than 1" in reason


def test_unknown_weighting_is_rejected() -> None:
    path, reason = only_problem(trainer(fit={"weighting": "energy"}))
    assert path == "trainer.fit.weighting"
    assert "'uniform'" in reason and "'energy_based'" in reason


# -- reference energies ---------------------------------------------------------------------------


def test_reference_energies_with_unknown_element_are_rejected() -> None:
    path, reason = only_problem(trainer(reference_energies={"Cu": -3.5, "Qq": -1.0}))
    assert path == "trainer.reference_energies"
    assert "unknown element symbols: ['Qq']" in reason


def test_reference_energy_that_is_no_number_is_named_by_its_element() -> None:
    problems = problems_of(trainer(reference_energies={"Cu": "low"}))
    paths = [path for path, _ in problems]
    assert "trainer.reference_energies.Cu" in paths
    assert all(path.startswith("trainer.reference_energies") for path in paths)
    assert not any("[" in path or "dict" in path for path in paths), paths


def test_reference_energies_other_string_than_auto_is_rejected() -> None:
    problems = problems_of(trainer(reference_energies="fit"))
    assert {path for path, _ in problems} == {"trainer.reference_energies"}
    assert any("'auto'" in reason for _, reason in problems)


# -- executables and resources --------------------------------------------------------------------


def test_executables_keep_unset_defaults() -> None:
    config = parse_trainer_config(trainer(executables={"pace_activeset": "/x/pace_activeset"}))
    assert config.executables.pace_activeset == "/x/pace_activeset"
    assert config.executables.pacemaker == "pacemaker"


def test_unknown_executable_is_rejected() -> None:
    assert only_problem(trainer(executables={"pace_collect": "pace_collect"})) == (
        "trainer.executables.pace_collect",
        "Extra inputs are not permitted",
    )


@pytest.mark.parametrize(("field", "value"), [("threads", 0), ("time_limit_seconds", -5)])
def test_resources_must_be_positive(field: str, value: int) -> None:
    path, reason = only_problem(trainer(**{field: value}))
    assert path == f"trainer.{field}"
    assert "greater than 0" in reason


def test_values_are_checked_on_assignment() -> None:
    config = parse_trainer_config(dict(MINIMAL))
    with pytest.raises(ValueError, match="greater than 0"):
        config.cutoff = -1.0


# -- loading files --------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_load_config_reads_a_yaml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.yaml",
        "trainer:\n"
        "  type: pacemaker\n"
        "  cutoff: 6.0\n"
        "  b_ref: {type: zbl, outer_cutoff: 2.0}\n"
        "  fit:\n"
        "    kappa: auto\n",
    )
    config = load_config(path)

    assert config.trainer.cutoff == 6.0
    assert config.trainer.b_ref == ZBLBaseline(outer_cutoff=2.0)
    assert config.trainer.fit.kappa == "auto"


def test_load_config_accepts_a_string_path(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "trainer: {type: mock, cutoff: 4}\n")
    assert load_config(str(path)).trainer.type == "mock"


def test_load_config_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = write(tmp_path / "bad_config.yaml", "trainer:\n  type: mock\n  cutoff: -3\n")
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)

    assert caught.value.source == path
    assert [p for p, _ in caught.value.problems] == ["trainer.cutoff"]
    message = str(caught.value)
    assert "bad_config.yaml" in message
    assert "trainer.cutoff" in message
    assert "greater than 0" in message


def test_load_config_of_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)

    assert caught.value.problems == [(str(path), "file does not exist")]
    assert "nowhere.yaml" in str(caught.value)


def test_load_config_of_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.yaml", "trainer:\n  type: [mock\n  cutoff: 5\n")
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)

    [(where, reason)] = caught.value.problems
    assert where == str(path)
    assert reason.startswith("not valid YAML")
    assert "broken.yaml" in str(caught.value)


def test_load_config_of_a_top_level_list(tmp_path: Path) -> None:
    path = write(tmp_path / "list.yaml", "- trainer\n- cutoff\n")
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)

    assert caught.value.problems == [("<top level>", "expected a mapping with a 'trainer' section")]
    assert "list.yaml" in str(caught.value)


def test_load_config_of_an_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.yaml", "")
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)

    assert caught.value.problems == [("<top level>", "expected a mapping with a 'trainer' section")]


def test_load_config_without_trainer_section(tmp_path: Path) -> None:
    path = write(tmp_path / "no_trainer.yaml", "oracle:\n  type: emt\n")
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)

    assert sorted(caught.value.problems) == [
        ("oracle", "Extra inputs are not permitted"),
        ("trainer", "Field required"),
    ]
    assert "no_trainer.yaml" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("30min", 1800.0),
        ("2h", 7200.0),
        ("1.5h", 5400.0),
        ("1:30:00", 5400.0),
        ("45:00", 2700.0),
        ("600", 600.0),
        (600, 600.0),
    ],
)
def test_time_budget_accepts_durations(text: str | int, seconds: float) -> None:
    config = parse_trainer_config({"type": "mock", "cutoff": 5.0, "fit": {"time_budget": text}})
    assert config.fit.time_budget == seconds


@pytest.mark.parametrize("text", ["soon", "10 days", "1:x", "1:2:3:4", "-5min"])
def test_time_budget_that_is_no_duration_is_named(text: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        parse_trainer_config({"type": "mock", "cutoff": 5.0, "fit": {"time_budget": text}})
    assert "trainer.fit.time_budget" in str(error.value)
    assert text in str(error.value)


def test_time_budget_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match=r"trainer\.fit\.time_budget.*greater than 0"):
        parse_trainer_config({"type": "mock", "cutoff": 5.0, "fit": {"time_budget": 0}})


# -- bounded error messages -----------------------------------------------------------------------


def _alias_bomb(levels: int = 9, width: int = 10) -> str:
    """YAML whose last alias stands for width**levels numbers, held in memory as a few lists."""
    lines = ["a0: &a0 [" + ", ".join(["1.0"] * width) + "]"]
    for level in range(1, levels):
        items = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{items}]")
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("section", "field"),
    [("embedding", "fs_parameters"), (None, "nradmax_by_orders"), ("execution", "setup")],
)
def test_an_alias_bomb_in_a_list_field_is_refused_with_a_bounded_message(
    tmp_path: Path, section: str | None, field: str
) -> None:
    # Formatting the whole input into the message expanded ~10**9 numbers and never returned.
    bomb = f"*a{8}"
    if section == "execution":
        value = f"{{type: slurm, time_limit: '01:00:00', setup: {bomb}}}"
        body = f"  execution: {value}"
    elif section == "embedding":
        body = f"  ace_params: {{embedding: {{fs_parameters: {bomb}}}}}"
    else:
        body = f"  ace_params: {{nradmax_by_orders: {bomb}, lmax_by_orders: [1]}}"
    config = tmp_path / "config.yaml"
    config.write_text(f"{_alias_bomb()}\ntrainer:\n  type: pacemaker\n  cutoff: 5.0\n{body}\n")
    with pytest.raises(ConfigurationError) as caught:
        load_config(config)
    message = str(caught.value)
    assert field in message
    assert len(message) < 5_000  # bounded: a few problems, each input shortened
    assert "more problems" in message or len(caught.value.problems) <= 20


def test_a_long_input_is_shortened_in_the_message() -> None:
    path, reason = only_problem(trainer(cutoff="x" * 100_000))
    assert path == "trainer.cutoff"
    assert "xxx" in reason and len(reason) < 400


@pytest.mark.parametrize("field", ["maxiter", "upfit_maxiter"])
def test_an_absurd_number_of_iterations_is_refused_with_its_duration(field: str) -> None:
    path, reason = only_problem(trainer(fit={field: 10**12}))
    assert path == f"trainer.fit.{field}"
    assert "1000000000000 iterations would run 31.7 years" in reason
    assert parse_trainer_config(trainer(fit={field: 10**7})).fit.model_dump()[field] == 10**7
