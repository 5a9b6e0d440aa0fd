"""Settings of the baseline that ACE corrects: ZBL, Lennard-Jones or none."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    PositiveFloat,
    field_validator,
    model_validator,
)

from mlip_autopipec.config.base import ELEMENTS, NotBool, StrictModel


class ZBLBaseline(StrictModel):
    """Ziegler-Biersack-Littmark nuclear repulsion, as LAMMPS ``pair_style zbl inner outer``.

    For each element pair, the baseline is full strength below its inner cutoff and switched
    smoothly to zero at its outer cutoff. Left unset, every pair gets its own cutoffs from its
    shortest distance in the training data (pairs absent from the data: from covalent radii);
    ``inner_cutoff``/``outer_cutoff`` set one pair of cutoffs for every pair, ``pair_cutoffs``
    for single pairs (docs: explanation/trainer, delta learning).
    """

    type: Literal["zbl"] = Field("zbl", description="ZBL (Ziegler-Biersack-Littmark) baseline")
    inner_cutoff: Annotated[PositiveFloat, NotBool] | None = Field(
        None,
        description="Å; ZBL is unswitched below this distance, for every pair. None: per pair.",
    )
    outer_cutoff: Annotated[PositiveFloat, NotBool] | None = Field(
        None, description="Å; ZBL is zero beyond this distance, for every pair. None: per pair."
    )
    pair_cutoffs: dict[str, tuple[PositiveFloat, PositiveFloat]] = Field(
        default_factory=dict,
        description=(
            "Å, [inner, outer] per element pair, e.g. {'C-H': [0.5, 0.9]}; wins over "
            "inner_cutoff/outer_cutoff. A trained potential lists every pair here."
        ),
    )
    margin: Annotated[float, NotBool, Field(ge=0.0, lt=0.5)] = Field(
        0.0,
        description=(
            "fraction of a pair's shortest distance in the data by which its outer cutoff lies "
            "below that distance (cutoffs chosen from the data only)"
        ),
    )

    @model_validator(mode="after")
    def _inner_below_outer(self) -> ZBLBaseline:
        if (
            self.inner_cutoff is not None
            and self.outer_cutoff is not None
            and self.inner_cutoff >= self.outer_cutoff
        ):
            raise ValueError(
                f"inner_cutoff ({self.inner_cutoff} Å) must be smaller than "
                f"outer_cutoff ({self.outer_cutoff} Å)"
            )
        for key, (inner, outer) in self.pair_cutoffs.items():
            if len(split_pair(key)) != 2:
                raise ValueError(f"pair_cutoffs key '{key}' is not an element pair like 'C-H'")
            if inner >= outer:
                raise ValueError(
                    f"pair_cutoffs['{key}']: inner ({inner} Å) must be smaller than outer "
                    f"({outer} Å)"
                )
        return self


def split_pair(key: str) -> tuple[str, ...]:
    """The element symbols of a pair key 'A-B' (an empty tuple if it is not one)."""
    parts = tuple(key.split("-"))
    return parts if all(part in ELEMENTS for part in parts) else ()


class LJBaseline(StrictModel):
    """Lennard-Jones 12-6, as LAMMPS ``pair_style lj/cut``.

    ``epsilon`` (eV) and ``sigma`` (Å) are given per element (``Cu``) or per pair (``Cu-Pt``);
    a pair that is not given is mixed from its elements (geometric mean, LAMMPS' default).
    """

    type: Literal["lj"] = Field("lj", description="Lennard-Jones 12-6 baseline")
    epsilon: dict[str, PositiveFloat] = Field(description="eV, per element or element pair")
    sigma: dict[str, PositiveFloat] = Field(description="Å, per element or element pair")
    cutoff: Annotated[PositiveFloat, NotBool] = Field(
        description="Å; LJ is zero beyond this distance"
    )
    shift: bool = Field(
        True, description="shift the energy to zero at the cutoff (LAMMPS pair_modify shift yes)"
    )

    @field_validator("epsilon", "sigma")
    @classmethod
    def _keys_are_elements_or_pairs(cls, value: dict[str, float]) -> dict[str, float]:
        for key in value:
            parts = key.split("-")
            if len(parts) > 2 or not all(part in ELEMENTS for part in parts):
                raise ValueError(
                    f"key '{key}' is neither an element symbol ('Cu') nor a pair ('Cu-Pt')"
                )
        return value


class NoBaseline(StrictModel):
    """No baseline: ACE alone, with pacemaker's ZBL core below the shortest distance in the data.

    Measured on held-out molecules (docs: explanation/trainer, delta learning), that core's
    0.1 Å switch puts a step of tens of eV/Å into the forces of bonds a little shorter than the
    data.
    """

    type: Literal["none"] = Field("none", description="no baseline")


Baseline = Annotated[ZBLBaseline | LJBaseline | NoBaseline, Field(discriminator="type")]
