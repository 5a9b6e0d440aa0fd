"""pacemaker's ``input.yaml``: a typed model of the keys pacemaker reads, and its builder."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.config.config_model import Baseline, LJBaseline, TrainerConfig, ZBLBaseline
from mlip_autopipec.domain_models.baseline import zbl_pair_cutoffs
from mlip_autopipec.errors import ConfigurationError
from mlip_autopipec.files import write_text_atomic
from mlip_autopipec.infrastructure.pacemaker.early_stop import early_stopping_keys

#: Keys of pacemaker's ``functions`` section by number of species in a block.
ORDER_KEYS = ("UNARY", "BINARY", "TERNARY", "QUATERNARY", "QUINARY")

#: pacemaker's recommended pools of basis functions (its ``pacemaker -t`` template):
#: (nradmax_by_orders, lmax_by_orders) for each number of species in a block.
DEFAULT_FUNCTION_POOLS: dict[str, tuple[list[int], list[int]]] = {
    "UNARY": ([15, 6, 4, 3, 2, 2], [0, 3, 3, 2, 2, 1]),
    "BINARY": ([15, 6, 3, 2, 2, 1], [0, 3, 2, 1, 1, 0]),
    "TERNARY": ([15, 3, 3, 2, 1], [0, 2, 2, 1, 1]),
    "QUATERNARY": ([15, 3, 2, 1, 1], [0, 2, 2, 1, 1]),
    "QUINARY": ([15, 3, 2, 1, 1], [0, 2, 2, 1, 1]),
}

#: Width (Å) over which pacemaker's own ZBL core takes over below the shortest distance in the data
#: (the value ``repulsion: auto`` uses).
ZBL_CORE_TRANSITION = 0.1
#: Width (Å) over which ACE is damped to zero below the shortest distance with an LJ baseline.
LJ_DAMPING_WIDTH = 0.5

log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EmbeddingBlock(_Section):
    npot: str
    fs_parameters: list[float]
    ndensity: int


class BondBlock(_Section):
    radbase: str
    radparameters: list[float]
    rcut: float
    dcut: float
    r_in: float
    delta_in: float
    inner_cutoff_type: Literal["distance", "zbl"]
    core_repulsion: list[float] = Field(alias="core-repulsion")


class FunctionsBlock(_Section):
    nradmax_by_orders: list[int]
    lmax_by_orders: list[int]


class PotentialSection(_Section):
    deltaSplineBins: float = 0.001
    elements: list[str]
    embeddings: dict[str, EmbeddingBlock]
    bonds: dict[str, BondBlock]
    functions: dict[str, FunctionsBlock | int]
    #: A next generation (docs: how-to/generations): the parent's potential file to continue from
    #: (same basis), or to extend (a larger basis, pacemaker's ladder scheme).
    filename: str | None = None
    initial_potential: str | None = None


class DataSection(_Section):
    filename: str
    test_size: float | None = None
    test_filename: str | None = None


class LossSection(_Section):
    kappa: float | Literal["auto"]
    L1_coeffs: float
    L2_coeffs: float


class FitSection(_Section):
    loss: LossSection
    optimizer: str
    maxiter: int
    weighting: dict[str, Any] | None = None
    callbacks: list[str] | None = None  # importable names, called after every iteration
    # pacemaker's early stopping (infrastructure/trainer/early_stop.py)
    early_stopping_patience: int | None = None
    min_relative_test_loss_per_iter: float | None = None
    min_relative_train_loss_per_iter: float | None = None


class BackendSection(_Section):
    evaluator: Literal["tensorpot"] = "tensorpot"
    batch_size: int
    display_step: int


class PacemakerInput(_Section):
    """The whole ``input.yaml``; field names are pacemaker's keys."""

    cutoff: float
    seed: int
    potential: PotentialSection
    data: DataSection
    fit: FitSection
    backend: BackendSection

    def to_yaml_dict(self) -> dict[str, Any]:
        """The mapping to dump as YAML (pacemaker's key names, unset options left out)."""
        return self.model_dump(by_alias=True, exclude_none=True)

    def write(self, path: Path) -> None:
        text = yaml.safe_dump(self.to_yaml_dict(), sort_keys=False, default_flow_style=None)
        write_text_atomic(path, text)


#: pacemaker's EnergyBasedWeightingPolicy with the values of its own template.
ENERGY_BASED_WEIGHTING: dict[str, Any] = {
    "type": "EnergyBasedWeightingPolicy",
    "DElow": 1.0,
    "DEup": 10.0,
    "DFup": 50.0,
    "DE": 1.0,
    "DF": 1.0,
    "wlow": 0.75,
    "energy": "convex_hull",
    "reftype": "all",
}


#: Functions per element grow as this times sqrt(atomic environments per element).
FUNCTIONS_PER_SQRT_ENVIRONMENT = 3.0
#: Fewest functions per species block the default gives when the data has the environments.
MIN_FUNCTIONS_PER_BLOCK = 6
#: Most functions per element by default (pacemaker recommends up to ~700 for large sets).
MAX_FUNCTIONS_PER_ELEMENT = 700


def default_functions_per_element(n_atoms: int, n_elements: int) -> int:
    """Basis size when the config leaves it open, from the atomic environments of the data.

    pacemaker shares an element's functions over the 2**(n-1) species blocks it takes part in
    (n elements), so the size is set per block: 3 * sqrt(environments per element), but at
    least MIN_FUNCTIONS_PER_BLOCK per block, at most as many as the element has environments
    (and MAX_FUNCTIONS_PER_ELEMENT), and never less than one per block. The learning curve
    behind it is in the docs (explanation/trainer, the basis rule).
    """
    blocks = 2 ** (n_elements - 1)
    environments = n_atoms / n_elements
    functions = max(
        FUNCTIONS_PER_SQRT_ENVIRONMENT * math.sqrt(environments), MIN_FUNCTIONS_PER_BLOCK * blocks
    )
    functions = min(functions, environments, MAX_FUNCTIONS_PER_ELEMENT)
    return int(max(blocks, round(functions)))


def build_pacemaker_input(
    config: TrainerConfig,
    *,
    baseline: Baseline,
    elements: Sequence[str],
    min_distances: Mapping[tuple[str, str], float],
    data_filename: str,
    n_atoms: int,
    hull: bool = True,
) -> PacemakerInput:
    """pacemaker's input for ``config`` on data with these elements and shortest distances (Å).

    ``baseline`` is ``config.b_ref`` with its cutoffs resolved. ``min_distances`` maps each
    sorted element pair to its shortest distance in the data, where ACE hands over to the
    short-range physics:

    - no baseline: pacemaker's own ZBL core replaces ACE below that distance
      (``inner_cutoff_type: zbl``, as pacemaker's ``repulsion: auto`` does);
    - a baseline, added back at deployment: ACE is faded to zero below that distance
      (``inner_cutoff_type: distance``, no core repulsion), so the ``.yace`` holds no ZBL and
      nothing is counted twice. With ZBL, ACE fades out over each pair's own switching region
      (from its outer cutoff, or its shortest distance if that is smaller, down to its inner
      cutoff): below the inner cutoff only ZBL acts.

    Without ZBL, pairs absent from the data use the smallest distance of all pairs.

    ``hull``: the compositions span the elements, so ``energy_based`` weighting can measure
    energies from the convex hull (pacemaker's default); otherwise from the lowest energy per
    atom ("cohesive"), as pacemaker's hull construction fails on such compositions (qhull:
    "initial simplex is flat").
    """
    elements = sorted(elements)
    ace = config.ace_params
    rcut = config.cutoff
    shortest_overall = min(min_distances.values())

    embeddings = {
        "ALL": EmbeddingBlock(
            npot=ace.embedding.npot,
            fs_parameters=list(ace.embedding.fs_parameters),
            ndensity=ace.embedding.ndensity,
        )
    }
    zbl_cutoffs = zbl_pair_cutoffs(baseline, elements) if isinstance(baseline, ZBLBaseline) else {}
    bonds: dict[str, BondBlock] = {}
    for first, second in combinations_with_replacement(elements, 2):
        r_in = min_distances.get((first, second), shortest_overall)
        if isinstance(baseline, ZBLBaseline | LJBaseline):
            if isinstance(baseline, ZBLBaseline):
                # ACE fades out over the pair's ZBL switching region (up to its shortest
                # distance in the data when the outer cutoff reaches beyond it).
                inner_cutoff, outer_cutoff = zbl_cutoffs[(first, second)]
                r_in = min(outer_cutoff, min_distances.get((first, second), outer_cutoff))
                fade_width = r_in - inner_cutoff
            else:
                fade_width = min(LJ_DAMPING_WIDTH, 0.5 * r_in)
            inner: dict[str, Any] = {
                "r_in": r_in,
                "delta_in": fade_width,
                "inner_cutoff_type": "distance",
                "core-repulsion": [0.0, 1.0],
            }
        else:
            inner = {
                "r_in": r_in,
                "delta_in": ZBL_CORE_TRANSITION,
                "inner_cutoff_type": "zbl",
                "core-repulsion": [1.0, 1.0],
            }
        bond = BondBlock.model_validate(
            {
                "radbase": ace.radial.radbase,
                "radparameters": list(ace.radial.radparameters),
                "rcut": rcut,
                "dcut": ace.radial.dcut,
                **inner,
            }
        )
        bonds[f"{first} {second}"] = bond
        if first != second:
            bonds[f"{second} {first}"] = bond

    functions_per_element = ace.number_of_functions_per_element or default_functions_per_element(
        n_atoms, len(elements)
    )
    # pacemaker shares the functions out evenly over the species blocks (n * 2**(n-1) for n
    # elements), rounding down: too few per element leave some blocks, or all, empty.
    if functions_per_element < 2 ** (len(elements) - 1):
        raise ConfigurationError(
            [
                (
                    "trainer.ace_params.number_of_functions_per_element",
                    f"{functions_per_element} is too few for {len(elements)} elements: pacemaker "
                    f"spreads them over {len(elements) * 2 ** (len(elements) - 1)} species "
                    f"blocks and needs at least {2 ** (len(elements) - 1)} per element",
                )
            ]
        )
    environments = n_atoms // len(elements)
    if ace.number_of_functions_per_element is not None and functions_per_element > environments:
        log.warning(
            "number_of_functions_per_element %d is more than the %d atoms per element the fit "
            "has (%d atoms, %d elements): more coefficients than atomic environments to "
            "determine them; leave it unset to size the basis from the data",
            functions_per_element,
            environments,
            n_atoms,
            len(elements),
        )
    functions: dict[str, FunctionsBlock | int] = {
        "number_of_functions_per_element": functions_per_element
    }
    for order_key in ORDER_KEYS[: len(elements)]:
        if ace.nradmax_by_orders is not None and ace.lmax_by_orders is not None:
            nradmax, lmax = ace.nradmax_by_orders, ace.lmax_by_orders
        else:
            nradmax, lmax = DEFAULT_FUNCTION_POOLS[order_key]
        functions[order_key] = FunctionsBlock(
            nradmax_by_orders=list(nradmax), lmax_by_orders=list(lmax)
        )

    fit = config.fit
    return PacemakerInput(
        # pacemaker >= 0.4 takes the neighbour-list cutoff from the largest bond rcut and only
        # warns about this key; older versions need it. Equal to the largest rcut, both agree.
        cutoff=max(bond.rcut for bond in bonds.values()),
        seed=fit.seed,
        potential=PotentialSection(
            elements=list(elements), embeddings=embeddings, bonds=bonds, functions=functions
        ),
        data=DataSection(filename=data_filename, test_size=fit.test_size or None),
        fit=FitSection(
            loss=LossSection(kappa=fit.kappa, L1_coeffs=fit.L1_coeffs, L2_coeffs=fit.L2_coeffs),
            optimizer=fit.optimizer,
            maxiter=fit.maxiter,
            weighting=dict(
                ENERGY_BASED_WEIGHTING,
                energy="convex_hull" if hull else "cohesive",
                seed=fit.seed,
            )
            if fit.weighting == "energy_based"
            else None,
            **early_stopping_keys(fit),
        ),
        backend=BackendSection(batch_size=fit.batch_size, display_step=fit.display_step),
    )
