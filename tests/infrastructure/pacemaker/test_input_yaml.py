"""input.yaml builder: element sections, how the baseline shows, acceptance by pacemaker."""

from __future__ import annotations

import logging
import os
import subprocess
from itertools import combinations_with_replacement
from pathlib import Path

import pytest
import yaml

from mlip_autopipec.config.config_model import ZBLBaseline, parse_trainer_config
from mlip_autopipec.domain_models.baseline import resolve_baseline
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.pacemaker.input_yaml import (
    ORDER_KEYS,
    PacemakerInput,
    build_pacemaker_input,
    default_functions_per_element,
)
from mlip_autopipec.infrastructure.pacemaker.potential_file import potential_metadata
from mlip_autopipec.infrastructure.trainer.programs.runner import resolve_executable


def _distances(elements: list[str], shortest: float = 2.0) -> dict[tuple[str, str], float]:
    pairs = combinations_with_replacement(sorted(elements), 2)
    return {pair: shortest + 0.1 * k for k, pair in enumerate(pairs)}


def _build(raw_config: dict, elements: list[str], hull: bool = True) -> tuple[PacemakerInput, dict]:
    config = parse_trainer_config(raw_config)
    distances = _distances(elements)
    baseline = resolve_baseline(config.b_ref, distances)
    pacemaker_input = build_pacemaker_input(
        config,
        baseline=baseline,
        elements=elements,
        min_distances=distances,
        data_filename="data.pckl.gzip",
        n_atoms=2000,
        hull=hull,
    )
    return pacemaker_input, yaml.safe_load(
        yaml.safe_dump(pacemaker_input.to_yaml_dict(), sort_keys=False)
    )


def test_fe_pt_with_zbl_has_both_elements_the_pair_and_the_zbl_cutoffs(tmp_path: Path) -> None:
    raw = {
        "type": "pacemaker",
        "cutoff": 5.0,
        "b_ref": {"type": "zbl", "inner_cutoff": 1.0, "outer_cutoff": 1.8},
    }
    pacemaker_input, document = _build(raw, ["Pt", "Fe"])
    pacemaker_input.write(tmp_path / "input.yaml")
    text = (tmp_path / "input.yaml").read_text()
    assert "Fe" in text and "Pt" in text

    potential = document["potential"]
    assert potential["elements"] == ["Fe", "Pt"]
    assert set(potential["bonds"]) == {"Fe Fe", "Fe Pt", "Pt Fe", "Pt Pt"}
    for name, bond in potential["bonds"].items():
        # ACE is faded out down to ZBL's inner cutoff; no ZBL inside the .yace.
        assert bond["inner_cutoff_type"] == "distance", name
        assert bond["r_in"] - bond["delta_in"] == pytest.approx(1.0), name
        assert bond["core-repulsion"][0] == 0.0
        assert bond["rcut"] == 5.0
    # ACE is at full strength down to ZBL's outer cutoff (below the shortest distance, 2.1 Å).
    assert potential["bonds"]["Fe Pt"]["r_in"] == pytest.approx(1.8)
    assert set(potential["functions"]) == {"number_of_functions_per_element", "UNARY", "BINARY"}
    assert document["cutoff"] == 5.0

    config = parse_trainer_config(raw)
    metadata = potential_metadata(resolve_baseline(config.b_ref, _distances(["Fe", "Pt"])), {})
    baseline = yaml.safe_load(metadata["mlip_autopipec_baseline"])
    assert baseline["inner_cutoff"] == 1.0 and baseline["outer_cutoff"] == 1.8
    assert baseline["pair_cutoffs"] == {
        "Fe-Fe": [1.0, 1.8],
        "Fe-Pt": [1.0, 1.8],
        "Pt-Pt": [1.0, 1.8],
    }


def test_per_pair_zbl_fades_ace_over_each_pairs_own_switching_region() -> None:
    raw = {"type": "pacemaker", "cutoff": 5.0, "b_ref": {"type": "zbl"}}
    config = parse_trainer_config(raw)
    distances = {("C", "C"): 1.4, ("C", "H"): 1.0, ("H", "H"): 1.7}  # no O-anything in the data
    baseline = resolve_baseline(config.b_ref, distances, ["C", "H", "O"])
    pacemaker_input = build_pacemaker_input(
        config,
        baseline=baseline,
        elements=["C", "H", "O"],
        min_distances=distances,
        data_filename="data.pckl.gzip",
        n_atoms=500,
    )
    bonds = pacemaker_input.to_yaml_dict()["potential"]["bonds"]
    assert isinstance(baseline, ZBLBaseline)
    for key, (inner, outer) in baseline.pair_cutoffs.items():
        first, second = key.split("-")
        for name in (f"{first} {second}", f"{second} {first}"):
            assert bonds[name]["r_in"] == pytest.approx(outer), name
            assert bonds[name]["r_in"] - bonds[name]["delta_in"] == pytest.approx(inner), name
    assert bonds["C H"]["r_in"] == pytest.approx(1.0)  # the shortest C-H distance
    assert bonds["O O"]["r_in"] == pytest.approx(1.32)  # covalent radii of O


def test_five_elements_get_every_order_and_every_pair() -> None:
    elements = ["Ni", "Fe", "Cr", "Co", "Mn"]
    raw = {"type": "pacemaker", "cutoff": 4.5, "b_ref": {"type": "zbl"}}
    _, document = _build(raw, elements)
    potential = document["potential"]
    assert potential["elements"] == sorted(elements)
    assert len(potential["bonds"]) == 25
    assert {"Co Mn", "Mn Co", "Ni Ni"} <= set(potential["bonds"])
    assert [key for key in potential["functions"] if key in ORDER_KEYS] == list(ORDER_KEYS)


def test_without_baseline_pacemaker_zbl_core_sits_at_the_shortest_distance() -> None:
    raw = {"type": "pacemaker", "cutoff": 5.0, "b_ref": {"type": "none"}}
    _, document = _build(raw, ["Cu", "Pt"])
    bonds = document["potential"]["bonds"]
    assert {bond["inner_cutoff_type"] for bond in bonds.values()} == {"zbl"}
    assert bonds["Cu Cu"]["r_in"] == pytest.approx(2.0)
    assert bonds["Cu Pt"]["r_in"] == pytest.approx(2.1)
    assert bonds["Pt Pt"]["r_in"] == pytest.approx(2.2)
    assert "repulsion" not in document["fit"]


def test_lj_baseline_fades_ace_below_the_data() -> None:
    raw = {
        "type": "pacemaker",
        "cutoff": 5.0,
        "b_ref": {"type": "lj", "epsilon": {"Cu": 0.4}, "sigma": {"Cu": 2.3}, "cutoff": 4.0},
    }
    _, document = _build(raw, ["Cu"])
    bond = document["potential"]["bonds"]["Cu Cu"]
    assert bond["inner_cutoff_type"] == "distance"
    assert bond["r_in"] == pytest.approx(2.0)
    assert 0 < bond["delta_in"] <= 1.0


def test_fit_and_basis_settings_reach_the_file() -> None:
    raw = {
        "type": "pacemaker",
        "cutoff": 6.0,
        "ace_params": {
            "number_of_functions_per_element": 77,
            "nradmax_by_orders": [8, 2],
            "lmax_by_orders": [0, 1],
        },
        "fit": {
            "maxiter": 12,
            "kappa": "auto",
            "optimizer": "L-BFGS-B",
            "test_size": 0.2,
            "seed": 7,
            "batch_size": 5,
            "weighting": "energy_based",
        },
    }
    _, document = _build(raw, ["Cu"])
    assert document["potential"]["functions"] == {
        "number_of_functions_per_element": 77,
        "UNARY": {"nradmax_by_orders": [8, 2], "lmax_by_orders": [0, 1]},
    }
    assert document["fit"]["maxiter"] == 12
    assert document["fit"]["loss"]["kappa"] == "auto"
    assert document["fit"]["optimizer"] == "L-BFGS-B"
    assert document["fit"]["weighting"]["type"] == "EnergyBasedWeightingPolicy"
    assert document["fit"]["weighting"]["seed"] == 7
    assert document["fit"]["weighting"]["energy"] == "convex_hull"
    assert document["data"] == {"filename": "data.pckl.gzip", "test_size": 0.2}
    assert document["seed"] == 7
    assert document["backend"] == {"evaluator": "tensorpot", "batch_size": 5, "display_step": 50}


def test_energy_weights_count_from_the_lowest_energy_when_compositions_make_no_hull() -> None:
    """Two molecules of three elements: pacemaker's convex hull over the compositions fails
    (qhull, a flat simplex), so the energies are measured from the lowest one instead."""
    raw = {"type": "pacemaker", "cutoff": 5.0, "fit": {"weighting": "energy_based"}}
    _, document = _build(raw, ["C", "H", "O"], hull=False)
    assert document["fit"]["weighting"]["energy"] == "cohesive"


def test_no_test_split_leaves_test_size_out() -> None:
    _, document = _build({"type": "pacemaker", "cutoff": 5.0, "fit": {"test_size": 0}}, ["Cu"])
    assert "test_size" not in document["data"]
    assert "weighting" not in document["fit"]


def test_default_basis_size_grows_with_the_environments_per_block_within_bounds() -> None:
    assert default_functions_per_element(11309, 1) == 319  # Cu-II: 3 * sqrt(11309)
    assert default_functions_per_element(10**7, 1) == 700
    assert default_functions_per_element(1408, 2) == 80  # the demo: 3 * sqrt(704)
    # Five elements: 16 blocks per element; 3600 atoms give 80 per element, but at least 6
    # per block: 96, unless the element has fewer environments than that.
    assert default_functions_per_element(3600, 5) == 96
    assert default_functions_per_element(20000, 5) == 190  # 3 * sqrt(4000)
    assert default_functions_per_element(200, 5) == 40
    assert default_functions_per_element(20, 5) == 16  # at least one per block
    assert default_functions_per_element(4, 1) == 4


@pytest.mark.requires_pacemaker
@pytest.mark.parametrize("elements", [["Cu"], ["Cr", "Co", "Fe", "Mn", "Ni"]])
def test_pyace_builds_the_basis_from_the_potential_section(elements: list[str]) -> None:
    import pyace
    from pyace.multispecies_basisextension import create_multispecies_basis_config

    raw = {
        "type": "pacemaker",
        "cutoff": 5.0,
        "b_ref": {"type": "zbl"},
        "ace_params": {"number_of_functions_per_element": 20},
    }
    _, document = _build(raw, elements)
    basis_config = create_multispecies_basis_config(document["potential"])
    basis = pyace.ACEBBasisSet(basis_config)
    assert list(basis.elements_name) == sorted(elements)
    # pacemaker rounds the share of each species block down.
    assert 0.75 * 20 * len(elements) <= basis_config.total_number_of_functions <= 20 * len(elements)


def test_too_few_functions_for_many_elements_is_a_configuration_error() -> None:
    raw = {
        "type": "pacemaker",
        "cutoff": 4.5,
        "ace_params": {"number_of_functions_per_element": 15},
    }
    with pytest.raises(ConfigurationError) as caught:
        _build(raw, ["Cr", "Co", "Fe", "Mn", "Ni"])
    field, reason = caught.value.problems[0]
    assert field == "trainer.ace_params.number_of_functions_per_element"
    assert "at least 16 per element" in reason
    _build(
        {**raw, "ace_params": {"number_of_functions_per_element": 16}},
        ["Cr", "Co", "Fe", "Mn", "Ni"],
    )


@pytest.mark.slow
@pytest.mark.requires_pacemaker
def test_pacemaker_dry_run_accepts_the_generated_input(cu_pt_dataset, tmp_path: Path) -> None:
    from mlip_autopipec.infrastructure.trainer.mock_trainer import MockTrainer

    pacemaker = resolve_executable("pacemaker")
    config = parse_trainer_config(
        {
            "type": "mock",
            "cutoff": 4.5,
            "b_ref": {"type": "zbl"},
            "ace_params": {"number_of_functions_per_element": 8},
        }
    )
    MockTrainer(config).train(cu_pt_dataset, tmp_path)
    result = subprocess.run(
        [pacemaker, "--dry-run", "input.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "target_potential.yaml").exists()


def test_more_functions_than_the_data_can_determine_is_warned_with_the_numbers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = {
        "type": "pacemaker",
        "cutoff": 4.5,
        "ace_params": {"number_of_functions_per_element": 10**9},
    }
    with caplog.at_level(logging.WARNING):
        _build(raw, ["Cu", "Pt"])  # 2000 atoms
    assert (
        "number_of_functions_per_element 1000000000 is more than the 1000 atoms per element"
        in caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _build({**raw, "ace_params": {"number_of_functions_per_element": 1000}}, ["Cu", "Pt"])
        _build({"type": "pacemaker", "cutoff": 4.5}, ["Cu", "Pt"])  # sized from the data
    assert "number_of_functions_per_element" not in caplog.text
