"""The next generation of a potential, as a value the trainer is given: accumulated data, the
parent's energy scale, and a fit that starts from the parent's coefficients (upfit) or grows its
basis, unless it cannot (docs: how-to/generations)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from mlip_autopipec.config.baseline import split_pair
from mlip_autopipec.config.config_model import TrainerConfig, ZBLBaseline
from mlip_autopipec.domain_models.dataset import Dataset
from mlip_autopipec.domain_models.lineage import Accumulated, Lineage, accumulate
from mlip_autopipec.domain_models.neighbours import NeighbourTable
from mlip_autopipec.domain_models.potential import Potential
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.infrastructure.pacemaker.input_yaml import BondBlock, PacemakerInput
from mlip_autopipec.infrastructure.rundir.files import PARENT_POTENTIAL
from mlip_autopipec.infrastructure.trainer.cost.budget import SizedFit
from mlip_autopipec.infrastructure.trainer.generations.parent import (
    PreviousRun,
    copy_for_start,
    read_previous_run,
)
from mlip_autopipec.infrastructure.trainer.plan import RunPlan, plan_run
from mlip_autopipec.infrastructure.trainer.programs.profile import ProgramProfile

log = logging.getLogger(__name__)

#: How deep (as a share of its width) the data may reach into a kept switching region of ZBL
#: or a kept fade of ACE before they are chosen again: at 5 % of the width ACE keeps over 99 %
#: of its strength.
FADE_TOLERANCE = 0.05


@dataclass(frozen=True)
class Start:
    """How the fit starts, and pacemaker's input that does it."""

    fitted_from: Literal["fresh", "upfit", "basis growth"]
    reason: str
    pacemaker_input: PacemakerInput


@dataclass(frozen=True)
class Generation:
    """A next generation: the config it is fitted with (the parent's energy scale inherited),
    the parent run, the accumulated data and the structures added to them."""

    config: TrainerConfig
    parent: PreviousRun
    accumulated: Accumulated
    added: Dataset
    #: What of the energy scale was inherited (``potential.json``: lineage).
    scale: str
    #: The ZBL cutoffs of ``config`` are the parent's, not the user's (they are chosen again
    #: if they reach into the new data).
    cutoffs_inherited: bool = False


def next_generation(
    config: TrainerConfig,
    dataset: Dataset,
    previous: Potential,
    test_dataset: Dataset | None = None,
    neighbours: NeighbourTable | None = None,
) -> Generation:
    """The generation after ``previous`` on its data plus ``dataset``; the parent's test
    structures stay test structures. OutputError when the parent run lacks what it needs.
    ``neighbours``: the parent's neighbour searches, read by the checks of its structures."""
    if test_dataset is not None:
        raise ConfigurationError(
            [
                (
                    "test_dataset",
                    "not with a previous run: the test set is the parent's plus a share "
                    "(fit.test_size) of the new structures",
                )
            ]
        )
    # The parent's data (safe copies), plus the new structures, duplicates counted once.
    parent = read_previous_run(
        previous, accept_failed_checks=config.accept_failed_checks, neighbours=neighbours
    )
    accumulated = accumulate(
        parent.training,
        parent.test,
        dataset,
        test_size=config.fit.test_size,
        seed=config.fit.seed,
    )
    log.info("%s", accumulation_message(parent, accumulated))
    # The parent's energy scale unless the config sets one.
    inherited, scale = inherited_config(config, previous)
    return Generation(
        inherited,
        parent,
        accumulated,
        dataset,
        scale,
        cutoffs_inherited=inherited.b_ref != config.b_ref,
    )


def accumulation_message(parent: PreviousRun, accumulated: Accumulated) -> str:
    """One line on what the next generation's data are made of."""
    message = (
        f"generation {parent.generation + 1} from {parent.potential.run_dir}: "
        f"{accumulated.n_inherited} training and {accumulated.n_test_inherited} test structures "
        f"inherited (test structures stay test), {accumulated.n_added_train} new for training, "
        f"{accumulated.n_added_test} new for test"
    )
    if accumulated.n_duplicates:
        shown = ", ".join(accumulated.duplicates[:3])
        more = ", ..." if accumulated.n_duplicates > 3 else ""
        message += (
            f"; {accumulated.n_duplicates} given structure(s) already present, counted once "
            f"({shown}{more})"
        )
    return message


def inherited_config(config: TrainerConfig, parent: Potential) -> tuple[TrainerConfig, str]:
    """``config`` with the parent's baseline (and ZBL cutoffs) where the config leaves them
    open, and the parent as the previous potential of a selection; and what was inherited."""
    update: dict[str, object] = {}
    notes = []
    given = config.b_ref
    if "b_ref" not in config.model_fields_set:
        update["b_ref"] = parent.baseline
        notes.append(f"baseline ({parent.baseline.type}) of the parent")
    elif (
        isinstance(given, ZBLBaseline)
        and isinstance(parent.baseline, ZBLBaseline)
        and not given.pair_cutoffs
        and given.inner_cutoff is None
        and given.outer_cutoff is None
        and given.margin == parent.baseline.margin
    ):
        update["b_ref"] = given.model_copy(update={"pair_cutoffs": parent.baseline.pair_cutoffs})
        notes.append("ZBL cutoffs of the parent")
    else:
        notes.append("baseline of the config")
    if config.reference_energies == "auto":
        notes.append("reference energies of the parent (new elements fitted with them fixed)")
    else:
        notes.append("reference energies of the config")
    if config.active_set.enabled and config.active_set.previous_potential is None:
        update["active_set"] = config.active_set.model_copy(
            update={"previous_potential": parent.run_dir}
        )
    return config.model_copy(update=update), ", ".join(notes)


def plan_generation(
    generation: Generation,
    dataset: Dataset,
    *,
    n_training: int | None = None,
    free_atom_energies: Mapping[str, float] | None = None,
    fitting: bool = True,
    neighbours: NeighbourTable | None = None,
) -> tuple[RunPlan, Generation]:
    """The run's plan (:func:`plan.plan_run`) with the parent's reference energies fixed under
    'auto' (a new element gets its value by the same rule, with them fixed); the generation
    with what this changed of its energy scale noted."""
    config, parent = generation.config, generation.parent.potential
    known = dict(free_atom_energies or {})
    if config.reference_energies == "auto":
        known |= parent.reference_energies

    def planned(config: TrainerConfig) -> RunPlan:
        return plan_run(
            config,
            dataset,
            n_training=n_training,
            free_atom_energies=known,
            fitting=fitting,
            neighbours=neighbours,
        )

    try:
        plan = planned(config)
        why = switching_reached(plan, config) if generation.cutoffs_inherited else None
    except ConfigurationError as error:
        if not (generation.cutoffs_inherited and isinstance(config.b_ref, ZBLBaseline)):
            raise
        why = str(error)
    if why is not None and isinstance(config.b_ref, ZBLBaseline):
        # The parent's ZBL cutoffs reach into the new data: chosen again from all of it.
        log.warning("%s: the ZBL cutoffs are chosen again from all the data", why)
        open_cutoffs = config.b_ref.model_copy(update={"pair_cutoffs": {}})
        config = config.model_copy(update={"b_ref": open_cutoffs})
        generation = replace(
            generation,
            config=config,
            cutoffs_inherited=False,
            scale=generation.scale
            + "; but the ZBL cutoffs were chosen again from all the data (the parent's "
            "reached into the new structures), so energies differ from the parent's there",
        )
        plan = planned(config)
    new = sorted(set(plan.reference_energies) - set(parent.reference_energies))
    if new and config.reference_energies == "auto":
        values = ", ".join(f"{e} {plan.reference_energies[e]:.4f} eV" for e in new)
        log.warning("new element(s): reference energies %s (fitted, parent's fixed)", values)
        generation = replace(
            generation, scale=f"{generation.scale}; new element reference energies: {values}"
        )
    return plan, generation


def switching_reached(plan: RunPlan, config: TrainerConfig) -> str | None:
    """What of the data lies deeper than :data:`FADE_TOLERANCE` of a kept ZBL switching region
    (where ZBL starts and ACE fades out), or None. Active learning adds ever closer contacts:
    kept there, the parent's cutoffs would leave the new data to a weakened ACE."""
    baseline = config.b_ref
    if not isinstance(baseline, ZBLBaseline):
        return None
    deep = []
    for key, (inner, outer) in sorted(baseline.pair_cutoffs.items()):
        first, second = sorted(split_pair(key))
        shortest = plan.shortest_distances.get((first, second))
        if shortest is not None and shortest < outer - FADE_TOLERANCE * (outer - inner):
            deep.append(f"{key} at {shortest:.3f} Å, switching from {outer} Å")
    if not deep:
        return None
    return "the data reach into the kept ZBL switching region (" + "; ".join(deep) + ")"


def closer_than_fade(
    section: Mapping[str, BondBlock], parent: Mapping[str, BondBlock]
) -> list[str]:
    """The pairs whose fade (``r_in``, Å) ``section`` puts below the parent's by more than
    :data:`FADE_TOLERANCE` of the parent's fade width: the data come closer than the parent's
    ACE reaches at full strength."""
    closer = []
    for pair, bond in sorted(section.items()):
        kept = parent.get(pair)
        if kept is not None and bond.r_in < kept.r_in - FADE_TOLERANCE * kept.delta_in:
            closer.append(f"{pair} {kept.r_in:.3f} -> {bond.r_in:.3f} Å")
    return closer


def started_fit(sized: SizedFit, start: Start, profile: ProgramProfile) -> SizedFit:
    """The sized fit with the start from the parent (its basis and fit.upfit_maxiter): the
    estimate and the progress display count its iterations."""
    started = start.pacemaker_input
    iterations = min(sized.planned_iterations, started.fit.maxiter)
    profile.plan_iterations(iterations)
    return replace(
        sized,
        pacemaker_input=started,
        planned_iterations=iterations,
        maxiter=started.fit.maxiter,
    )


def choose_start(generation: Generation, pacemaker_input: PacemakerInput, workdir: Path) -> Start:
    """Upfit (same basis: pacemaker's ``potential: filename``), basis growth (a larger
    basis: ``initial_potential``, extended in one ladder step) or a fresh fit (new
    elements or other basis settings), with fit.upfit_maxiter iterations unless fresh."""
    parent = generation.parent
    section = pacemaker_input.potential
    new_elements = sorted(set(section.elements) - set(parent.potential.elements))
    candidate = PreviousRun(parent.potential, (), (), pacemaker_input.to_yaml_dict()["potential"])
    functions = candidate.basis_functions
    if new_elements:
        return Start(
            "fresh",
            f"new element(s) {', '.join(new_elements)}: the parent's basis has none, so "
            "the fit starts afresh",
            pacemaker_input,
        )
    if candidate.shape() != parent.shape():
        differing = sorted(
            key
            for key in {*candidate.shape(), *parent.shape()}
            if candidate.shape().get(key) != parent.shape().get(key)
        )
        return Start(
            "fresh",
            f"the basis settings differ from the parent's ({', '.join(differing)}): the "
            "fit starts afresh",
            pacemaker_input,
        )
    bonds = {
        pair: BondBlock.model_validate(b) for pair, b in parent.potential_section["bonds"].items()
    }
    closer = closer_than_fade(section.bonds, bonds)
    if closer:
        return Start(
            "fresh",
            "the data come closer than the parent's short-range fade of ACE ("
            + ", ".join(closer[:3])
            + (", ..." if len(closer) > 3 else "")
            + "): the parent's coefficients were fitted with ACE weakened there, so the fit "
            "starts afresh with the fade chosen from all the data",
            pacemaker_input,
        )
    copy_for_start(
        parent.potential.run_dir / str(parent.potential.yaml_file), workdir / PARENT_POTENTIAL
    )
    fade_note = ""
    if bonds != section.bonds:
        fade_note = "; ACE's short-range fade (r_in) of the parent kept"
    section = section.model_copy(update={"bonds": bonds})
    if functions > parent.basis_functions:
        fitted_from: Literal["upfit", "basis growth"] = "basis growth"
        reason = (
            f"the basis grows from {parent.basis_functions} to {functions} functions per "
            "element: pacemaker extends the parent's potential (initial_potential)"
        )
        section = section.model_copy(update={"initial_potential": PARENT_POTENTIAL})
    else:
        fitted_from = "upfit"
        reason = f"from the parent's coefficients ({parent.basis_functions} functions per element)"
        if functions < parent.basis_functions:
            reason += f"; the parent's basis kept rather than {functions} functions"
        blocks = {
            **section.functions,
            "number_of_functions_per_element": parent.basis_functions,
        }
        section = section.model_copy(update={"filename": PARENT_POTENTIAL, "functions": blocks})
    maxiter = min(generation.config.fit.upfit_maxiter, pacemaker_input.fit.maxiter)
    fit = pacemaker_input.fit.model_copy(update={"maxiter": maxiter})
    started = pacemaker_input.model_copy(update={"potential": section, "fit": fit})
    return Start(fitted_from, f"{reason}{fade_note}; at most {maxiter} iterations", started)


def lineage(generation: Generation, start: Start) -> Lineage:
    """The record of this generation (``potential.json``: ``lineage``)."""
    parent, accumulated = generation.parent, generation.accumulated
    section = PreviousRun(
        parent.potential, (), (), start.pacemaker_input.to_yaml_dict()["potential"]
    )
    return Lineage(
        generation=parent.generation + 1,
        parent=str(parent.potential.run_dir),
        fitted_from=start.fitted_from,
        reason=start.reason,
        basis_functions=section.basis_functions,
        parent_basis_functions=parent.basis_functions,
        n_inherited=accumulated.n_inherited,
        n_added=accumulated.n_added_train + accumulated.n_added_test,
        n_duplicates=accumulated.n_duplicates,
        n_test_inherited=accumulated.n_test_inherited,
        n_test_added=accumulated.n_added_test,
        parent_data_sha256=parent.data_sha256,
        added_data_sha256=generation.added.fingerprint(),
        max_gamma_added=max_gamma_added(generation),
        inherited_energy_scale=generation.scale,
    )


def max_gamma_added(generation: Generation) -> float | None:
    """The highest extrapolation grade of the new structures (those of known elements)
    under the parent potential: how far the new data reach beyond it."""
    from mlip_autopipec.analysis.extrapolation import extrapolation_grades

    potential = generation.parent.potential
    if potential.active_set_path is None:
        return None
    known = set(potential.elements)
    indices = [
        i for i, s in enumerate(generation.added) if set(s.atoms.get_chemical_symbols()) <= known
    ]
    if not indices:
        return None
    try:
        grades = extrapolation_grades(potential, generation.added.subset(indices))
    except Exception as error:  # a record must not stop the fit
        log.warning("no extrapolation grade of the new structures: %s", error)
        return None
    return max(grade.max_gamma for grade in grades)
