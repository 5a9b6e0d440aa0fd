"""What a next generation takes from its parent, and the CLI's refusals (no fit runs)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mlip_autopipec.cli import EXIT_BAD_INPUT, main
from mlip_autopipec.config.config_model import LJBaseline, ZBLBaseline, parse_trainer_config
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import ConfigurationError, OutputError
from mlip_autopipec.infrastructure.trainer.generations.generation import (
    Generation,
    inherited_config,
    plan_generation,
)
from mlip_autopipec.infrastructure.trainer.generations.parent import PreviousRun, read_previous_run

RECORDED_RUN = Path(__file__).parents[3] / "data" / "recorded_run"
#: Structures of the recorded run's test predictions (pacemaker's random split), and some of its
#: training predictions.
RECORDED_TEST_NAMES = (
    "bulk_Pt0.25/14",
    "bulk_Pt0.25/20",
    "bulk_Pt0.25/23",
    "bulk_Pt0.75/51",
    "bulk_Pt1.00/60",
    "vacancy/71",
    "vacancy/74",
    "surface111/79",
)
RECORDED_TRAINING_NAMES = (
    "bulk_Pt0.00/0",
    "bulk_Pt0.25/15",
    "vacancy/70",
    "surface111/76",
    "dimer/82",
)
PARENT_ZBL = ZBLBaseline(pair_cutoffs={"Cu-Cu": (1.2, 2.2), "Cu-Pt": (1.3, 2.3)})


@pytest.fixture
def parent() -> Potential:
    return Potential.load(RECORDED_RUN).model_copy(update={"baseline": PARENT_ZBL})


def test_an_open_baseline_is_the_parents(parent: Potential) -> None:
    config, scale = inherited_config(
        parse_trainer_config({"type": "pacemaker", "cutoff": 5}), parent
    )
    assert config.b_ref == PARENT_ZBL
    assert "baseline (zbl) of the parent" in scale and "reference energies of the parent" in scale


def test_zbl_with_open_cutoffs_takes_the_parents_cutoffs(parent: Potential) -> None:
    config, scale = inherited_config(
        parse_trainer_config({"type": "pacemaker", "cutoff": 5, "b_ref": {"type": "zbl"}}), parent
    )
    assert isinstance(config.b_ref, ZBLBaseline)
    assert config.b_ref.pair_cutoffs == PARENT_ZBL.pair_cutoffs
    assert "ZBL cutoffs of the parent" in scale


@pytest.mark.parametrize(
    "b_ref",
    [
        {"type": "zbl", "inner_cutoff": 1.0, "outer_cutoff": 2.0},
        {"type": "zbl", "margin": 0.1},
        {
            "type": "lj",
            "epsilon": {"Cu": 0.1, "Pt": 0.1},
            "sigma": {"Cu": 2.0, "Pt": 2.0},
            "cutoff": 4.0,
        },
        {"type": "none"},
    ],
)
def test_a_baseline_the_config_sets_is_kept(parent: Potential, b_ref: dict) -> None:  # type: ignore[type-arg]
    given = parse_trainer_config({"type": "pacemaker", "cutoff": 5, "b_ref": b_ref})
    config, scale = inherited_config(given, parent)
    assert config.b_ref == given.b_ref
    assert "baseline of the config" in scale
    if isinstance(config.b_ref, LJBaseline):
        assert config.b_ref.epsilon == {"Cu": 0.1, "Pt": 0.1}


def test_given_reference_energies_and_selection(parent: Potential) -> None:
    config, scale = inherited_config(
        parse_trainer_config(
            {
                "type": "pacemaker",
                "cutoff": 5,
                "reference_energies": {"Cu": 0.1, "Pt": 0.2},
                "active_set": {"enabled": True, "fraction": 0.5},
            }
        ),
        parent,
    )
    assert config.reference_energies == {"Cu": 0.1, "Pt": 0.2}
    assert "reference energies of the config" in scale
    # The selection adds to what the parent's active set covers.
    assert config.active_set.previous_potential == parent.run_dir


def test_the_parents_split_is_read_from_its_safe_copies(
    tmp_path: Path, cu_pt_dataset: Dataset
) -> None:
    run = tmp_path / "run"
    shutil.copytree(RECORDED_RUN, run)
    with pytest.raises(OutputError, match=r"lacks training_set\.extxyz"):
        read_previous_run(Potential.load(run))
    shutil.copy(
        RECORDED_RUN.parent / "tiny_CuPt_output_potential.yaml", run / "output_potential.yaml"
    )
    # training_set.extxyz holds all the structures the fit read; pacemaker's random split put
    # those named in test_predictions.npz into its test set.
    images = cu_pt_dataset.to_atoms()
    for atoms, name in zip(images, [*RECORDED_TEST_NAMES, *RECORDED_TRAINING_NAMES], strict=True):
        atoms.info["name"] = name
    Dataset.from_atoms(images).write(run / "training_set.extxyz")

    previous = read_previous_run(Potential.load(run))

    assert sorted(s.name for s in previous.test) == sorted(RECORDED_TEST_NAMES)
    assert sorted(s.name for s in previous.training) == sorted(RECORDED_TRAINING_NAMES)
    # A fixed test set: test_set.extxyz holds it, training_set.extxyz the training data only.
    Dataset.from_atoms(images[:2]).write(run / "test_set.extxyz")
    Dataset.from_atoms(images[2:]).write(run / "training_set.extxyz")
    previous = read_previous_run(Potential.load(run))
    assert [s.name for s in previous.test] == [atoms.info["name"] for atoms in images[:2]]
    assert [s.name for s in previous.training] == [atoms.info["name"] for atoms in images[2:]]


def test_the_cli_refuses_a_missing_parent_and_a_fixed_test_set(
    tmp_path: Path,
    cu_pt_dataset: Dataset,
    train_argv: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = {"type": "pacemaker", "cutoff": 4.5}
    train = train_argv(cu_pt_dataset, config, data_name="new.extxyz")
    out = ["--out", str(tmp_path / "next")]
    assert main([*train, "--previous", str(tmp_path / "nothing"), *out]) == EXIT_BAD_INPUT
    assert "holds no finished potential" in capsys.readouterr().err
    previous = ["--previous", str(RECORDED_RUN)]
    assert main([*train, *previous, "--test-data", train[-1], *out]) == EXIT_BAD_INPUT
    assert "--test-data and --previous cannot be combined" in capsys.readouterr().err
    assert main([*train, *previous, *out]) == EXIT_BAD_INPUT  # no training_set.extxyz
    assert "lacks training_set.extxyz" in capsys.readouterr().err
    assert not (tmp_path / "next").exists()


def _with_inherited_cutoffs(parent: Potential, dataset: Dataset) -> Generation:
    """The next generation of ``parent`` on ``dataset`` with the parent's ZBL cutoffs taken
    over (an open ``b_ref: zbl``); no accumulated data (planning does not need them)."""
    config, scale = inherited_config(
        parse_trainer_config({"type": "pacemaker", "cutoff": 5}), parent
    )
    previous = PreviousRun(parent, (), (), {})
    return Generation(config, previous, None, dataset, scale, cutoffs_inherited=True)  # type: ignore[arg-type]


def test_parent_cutoffs_reaching_into_new_data_are_chosen_again(
    parent: Potential, cu_pt_dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    # The data's Cu-Pt dimer is 2.3 Å long: inside the parent's inner cutoff.
    reaching = ZBLBaseline(pair_cutoffs={"Cu-Cu": (1.2, 2.2), "Cu-Pt": (2.35, 2.6)})
    parent = parent.model_copy(update={"baseline": reaching})
    inherited = _with_inherited_cutoffs(parent, cu_pt_dataset)
    config, previous, scale = inherited.config, inherited.parent, inherited.scale
    plan, inherited = plan_generation(inherited, cu_pt_dataset)
    assert isinstance(plan.baseline, ZBLBaseline)
    assert plan.baseline.pair_cutoffs["Cu-Pt"][0] < 2.3
    assert "chosen again" in caplog.text and "chosen again" in inherited.scale
    assert plan.reference_energies == parent.reference_energies  # still the parent's
    # Cutoffs the user gave are an error, not replaced.
    given = Generation(config, previous, None, cu_pt_dataset, scale)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="b_ref"):
        plan_generation(given, cu_pt_dataset)


@pytest.mark.parametrize(
    ("cu_cu", "chosen_again"),
    [((1.16, 2.16), False), ((1.3, 2.3), True)],
)
def test_parent_cutoffs_the_data_reach_deep_into_are_chosen_again(
    parent: Potential,
    cu_pt_dataset: Dataset,
    caplog: pytest.LogCaptureFixture,
    cu_cu: tuple[float, float],
    chosen_again: bool,
) -> None:
    # The data's shortest Cu-Cu distance is 2.140 Å: 0.02 Å (2 % of the width) into a
    # switching region from 2.16 Å, where ACE keeps its strength; 0.16 Å into one from 2.3 Å.
    kept = {"Cu-Cu": cu_cu, "Cu-Pt": (1.1, 2.1), "Pt-Pt": (1.2, 2.2)}
    parent = parent.model_copy(update={"baseline": ZBLBaseline(pair_cutoffs=kept)})
    generation = _with_inherited_cutoffs(parent, cu_pt_dataset)
    plan, generation = plan_generation(generation, cu_pt_dataset)
    assert isinstance(plan.baseline, ZBLBaseline)
    if chosen_again:
        assert plan.baseline.pair_cutoffs["Cu-Cu"] == (1.14, 2.14)
        assert "Cu-Cu at 2.140 Å, switching from 2.3 Å" in caplog.text
        assert "chosen again" in generation.scale
    else:
        assert plan.baseline.pair_cutoffs == kept
        assert "chosen again" not in caplog.text + generation.scale
