"""Settings of the ACE basis and of the fit (loss, optimiser, data split, time budget)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from mlip_autopipec.config.base import NotBool, StrictModel
from mlip_autopipec.config.durations import parse_duration


class EmbeddingSettings(StrictModel):
    """Embedding function of each element: F(rho) = sum_k c_k * rho_k ** p_k."""

    npot: Literal["FinnisSinclairShiftedScaled", "FinnisSinclair"] = Field(
        "FinnisSinclairShiftedScaled", description="form of the embedding function (pacemaker)"
    )
    fs_parameters: list[float] = Field(
        default_factory=lambda: [1.0, 1.0, 1.0, 0.5],
        description="pairs (c_k, p_k), one pair per density",
    )
    ndensity: PositiveInt = Field(2, description="number of densities rho_k")

    @model_validator(mode="after")
    def _two_parameters_per_density(self) -> EmbeddingSettings:
        if len(self.fs_parameters) != 2 * self.ndensity:
            raise ValueError(
                f"fs_parameters needs 2 values per density: {2 * self.ndensity} for "
                f"ndensity={self.ndensity}, got {len(self.fs_parameters)}"
            )
        return self


class RadialBasisSettings(StrictModel):
    """Radial basis of the bonds."""

    radbase: Literal["SBessel", "ChebExpCos", "ChebPow"] = Field(
        "SBessel", description="radial basis functions (pacemaker)"
    )
    radparameters: list[float] = Field(
        default_factory=lambda: [5.25], description="parameters of the radial basis"
    )
    dcut: PositiveFloat = Field(0.01, description="Å, width of the smooth outer cutoff")


class AceParams(StrictModel):
    """Shape and size of the ACE basis.

    ``nradmax_by_orders``/``lmax_by_orders`` give the pool of basis functions per body order
    (first entry: pair term). Left unset, pacemaker's recommended pools are used for every
    species combination (unary to quinary). ``number_of_functions_per_element`` then trims the
    pool to the most important functions; left unset, it grows with the atomic environments
    of the dataset, per species block.
    """

    number_of_functions_per_element: PositiveInt | None = Field(
        None,
        description=(
            "basis size per element; None: 3 * sqrt(atoms per element), at least 6 per "
            "species block (2**(n-1) blocks per element for n elements), at most the atoms "
            "per element and 700 (docs: explanation/trainer, the basis rule)"
        ),
    )
    nradmax_by_orders: list[PositiveInt] | None = Field(
        None,
        description="largest radial index per body order; None: pacemaker's recommended pools",
    )
    lmax_by_orders: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="largest angular momentum per body order (with nradmax_by_orders)"
    )
    embedding: EmbeddingSettings = Field(
        default_factory=EmbeddingSettings, description="embedding function of every element"
    )
    radial: RadialBasisSettings = Field(
        default_factory=RadialBasisSettings, description="radial basis of every bond"
    )

    @model_validator(mode="after")
    def _orders_match(self) -> AceParams:
        if (self.nradmax_by_orders is None) != (self.lmax_by_orders is None):
            raise ValueError("give both nradmax_by_orders and lmax_by_orders, or neither")
        if (
            self.nradmax_by_orders is not None
            and self.lmax_by_orders is not None
            and len(self.nradmax_by_orders) != len(self.lmax_by_orders)
        ):
            raise ValueError(
                f"nradmax_by_orders ({len(self.nradmax_by_orders)} orders) and lmax_by_orders "
                f"({len(self.lmax_by_orders)} orders) must have the same length"
            )
        return self


#: More iterations than any fit runs (weeks even at the fastest iteration).
MAX_ITERATIONS = 10_000_000
#: s per iteration of the smallest basis on few structures: the fastest a fit iterates.
FASTEST_ITERATION_S = 1e-3


class FitSettings(StrictModel):
    """Loss, optimiser and data split of the fit."""

    maxiter: Annotated[PositiveInt, NotBool] = Field(
        1500, description="maximum optimiser iterations"
    )
    upfit_maxiter: Annotated[PositiveInt, NotBool] = Field(
        300,
        description=(
            "maximum iterations of a fit that continues from a previous potential (train "
            "--previous: upfit or basis growth); maxiter and time_budget still cap it"
        ),
    )
    kappa: Annotated[float, NotBool, Field(ge=0.0, le=1.0)] | Literal["auto"] = Field(
        0.3, description="relative weight of forces in the loss (0: energies only, 1: forces only)"
    )
    L1_coeffs: Annotated[float, Field(ge=0.0)] = Field(1e-8, description="L1 regularisation")
    L2_coeffs: Annotated[float, Field(ge=0.0)] = Field(1e-8, description="L2 regularisation")
    optimizer: Literal["BFGS", "L-BFGS-B"] = Field(
        "BFGS", description="scipy optimiser (L-BFGS-B needs less memory for large bases)"
    )
    weighting: Literal["uniform", "energy_based"] = Field(
        "uniform",
        description=(
            "uniform: every structure counts the same; energy_based: pacemaker's "
            "EnergyBasedWeightingPolicy (favours low-energy structures, drops those above "
            "E_min + 10 eV/atom; energies from the convex hull over the compositions, or from "
            "the lowest energy per atom when the compositions make no hull, e.g. two "
            "molecules of three elements). Per-structure weights in the dataset take "
            "precedence."
        ),
    )
    test_size: Annotated[float, NotBool, Field(ge=0.0, lt=1.0)] = Field(
        0.1, description="fraction of the structures held out as test set (0: none)"
    )
    seed: int = Field(42, description="random seed of the test split and the fit")
    batch_size: PositiveInt = Field(100, description="structures per evaluation batch")
    display_step: PositiveInt = Field(
        50, description="iterations between detailed metrics in pacemaker's log"
    )
    time_budget: PositiveFloat | None = Field(
        None,
        description=(
            "s of wall time for the whole training (also '90s', '30min', '2h', '1:30:00'): "
            "the iterations (and, if number_of_functions_per_element is not given, the basis "
            "size) are chosen from a measured cost estimate, and the fit is stopped at the "
            "budget with the potential of its last iteration; maxiter, if given, stays an upper "
            "bound. None: no budget"
        ),
    )

    early_stop_patience: Annotated[PositiveInt, NotBool] | None = Field(
        None,
        description=(
            "stop the fit when the test loss (the train loss without a test set) has not "
            "improved by early_stop_min_improvement in this many evaluations in a row (an "
            "evaluation every display_step iterations): pacemaker's own early stopping. "
            "None: run to maxiter or the time budget"
        ),
    )
    early_stop_min_improvement: Annotated[float, NotBool, Field(gt=0.0, lt=1.0)] = Field(
        1e-3,
        description=(
            "with early_stop_patience: the relative fall of the loss from one evaluation to "
            "the next below which the evaluation counts as no improvement (0.001: 0.1 %)"
        ),
    )

    @field_validator("maxiter", "upfit_maxiter")
    @classmethod
    def _iterations_a_fit_can_run(cls, value: int) -> int:
        if value > MAX_ITERATIONS:
            years = value * FASTEST_ITERATION_S / (365.25 * 24 * 3600)
            raise ValueError(
                f"{value} iterations would run {years:.3g} years even at "
                f"{FASTEST_ITERATION_S * 1e3:g} ms per iteration (a tiny basis); fits converge "
                f"within 10^3 to 10^5 iterations (at most {MAX_ITERATIONS} are taken). For a "
                "fit that stops at a deadline, use time_budget"
            )
        return value

    @field_validator("time_budget", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value
