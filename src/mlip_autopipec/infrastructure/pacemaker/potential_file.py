"""pacemaker's potential files: metadata in the ``.yaml``, reference energies in the ``.yace``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

from mlip_autopipec.config.config_model import Baseline
from mlip_autopipec.domain_models.potential import Potential, Provenance
from mlip_autopipec.files import atomic_path, write_text_atomic

METADATA_BASELINE = "mlip_autopipec_baseline"
METADATA_REFERENCE_ENERGIES = "mlip_autopipec_reference_energies"

try:  # the C loader reads large potentials an order of magnitude faster
    _Loader: Any = yaml.CSafeLoader
    _Dumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader
    _Dumper = yaml.SafeDumper


def potential_metadata(
    baseline: Baseline, reference_energies: Mapping[str, float]
) -> dict[str, str]:
    """String key-value pairs stored in the potential file: the baseline it needs at deployment
    and the reference energies (eV/atom) its energies include."""
    return {
        METADATA_BASELINE: json.dumps(baseline.model_dump(mode="json")),
        METADATA_REFERENCE_ENERGIES: json.dumps(dict(reference_energies)),
    }


def add_metadata(yaml_path: Path, metadata: Mapping[str, str]) -> None:
    """Add string entries to the ``metadata`` of a B-basis potential file.

    pacemaker 0.4 does not copy input.yaml's ``metadata`` into the potential, so the trainer
    writes it here.
    """
    document = _load(yaml_path)
    # pacemaker's metadata are strings, some of which YAML would read as dates: keep them text.
    existing = {str(k): str(v) for k, v in (document.get("metadata") or {}).items()}
    document["metadata"] = existing | {str(k): str(v) for k, v in metadata.items()}
    _dump(document, yaml_path)


def potential_from_file(yaml_path: Path, yace_path: Path) -> Potential:
    """Rebuild a Potential from pacemaker's files alone, e.g. one copied without potential.json.

    The baseline and the reference energies come from the metadata the trainer wrote into the
    ``.yaml``; elements and cutoff from the potential itself. Metrics and the data's provenance
    are unknown.
    """
    document = _load(yaml_path)
    metadata = document.get("metadata") or {}
    if METADATA_BASELINE not in metadata:
        raise ValueError(
            f"{yaml_path} has no '{METADATA_BASELINE}' metadata: it was not written by "
            "mlip-autopipec, so its baseline is unknown"
        )
    blocks = document.get("species") or []
    elements = _species(document)
    cutoff = max(float(block.get("rcutij", 0.0)) for block in blocks)
    run_dir = yace_path.parent.resolve()
    return Potential(
        run_dir=run_dir,
        trainer="pacemaker",
        yace_file=yace_path.name,
        yaml_file=os.path.relpath(yaml_path.resolve(), run_dir),
        elements=tuple(elements),
        cutoff=cutoff,
        baseline=TypeAdapter(Baseline).validate_json(metadata[METADATA_BASELINE]),
        reference_energies=json.loads(metadata.get(METADATA_REFERENCE_ENERGIES, "{}")),
        provenance=Provenance(
            tool_versions={
                key: str(metadata[key])
                for key in ("pacemaker_version", "ace_evaluator_version", "tensorpot_version")
                if key in metadata
            },
            data_sha256=None,
            config_sha256=None,
        ),
    )


def potential_elements(yaml_path: Path) -> tuple[str, ...]:
    """The elements a B-basis potential (``.yaml``) holds, sorted: from its species blocks."""
    return tuple(_species(_load(yaml_path)))


def _species(document: dict[str, Any]) -> list[str]:
    blocks = document.get("species") or []
    return sorted({e for block in blocks for e in str(block["speciesblock"]).split()})


def set_reference_energies(yace_path: Path, reference_energies: Mapping[str, float]) -> None:
    """Write per-element energies (eV/atom) as the ``E0`` of a ``.yace`` potential.

    The PACE evaluators (pyace, LAMMPS ML-PACE) add ``E0`` of its element to each atom's
    energy, so the potential predicts total energies on the scale of the training labels.
    The ``.yace`` uses flow sequences as mapping keys, which PyYAML cannot load, so its
    one-line ``elements`` and ``E0`` entries are read and replaced as text.
    """
    lines = yace_path.read_text().splitlines(keepends=True)
    elements_index = _top_level_line(lines, "elements", yace_path)
    e0_index = _top_level_line(lines, "E0", yace_path)
    elements = yaml.safe_load(lines[elements_index])["elements"]
    missing = [element for element in elements if element not in reference_energies]
    if missing:
        raise ValueError(f"no reference energy for {missing} of {yace_path}")
    values = ", ".join(repr(float(reference_energies[element])) for element in elements)
    lines[e0_index] = f"E0: [{values}]\n"
    write_text_atomic(yace_path, "".join(lines))


def _top_level_line(lines: list[str], key: str, path: Path) -> int:
    matches = [i for i, line in enumerate(lines) if line.startswith(f"{key}: [")]
    if len(matches) != 1:
        raise ValueError(
            f"{path}: expected one one-line '{key}: [...]' entry, found {len(matches)}"
        )
    return matches[0]


def _load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        document = yaml.load(handle, Loader=_Loader)
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a potential file (no YAML mapping)")
    return document


def _dump(document: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as temporary, temporary.open("w") as handle:
        yaml.dump(document, handle, Dumper=_Dumper, sort_keys=False, default_flow_style=None)
