"""Renders the configuration reference (docs/configuration.md) from the pydantic models.

Run ``python -m mlip_autopipec.config_reference > docs/configuration.md`` after changing a
config model; a test fails while the file is stale.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from types import UnionType
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from mlip_autopipec.config.config_model import TrainerConfig

HEADER = """\
# Configuration reference

Generated from the pydantic models in `src/mlip_autopipec/config/` by
`python -m mlip_autopipec.config_reference > docs/configuration.md`; do not edit by hand.

A config file is YAML with a `trainer` section; unknown keys are errors, and every error names
the field's path (e.g. `trainer.b_ref.inner_cutoff`). Units: lengths in Å, energies in eV,
times in s. Only `trainer.type` and `trainer.cutoff` are required.

```yaml
trainer:
  type: pacemaker
  cutoff: 5.0
  b_ref: {type: zbl}
```
"""


def render_reference() -> str:
    """The Markdown reference of every field of ``TrainerConfig``, section by section."""
    parts = [HEADER]
    parts += [_section(path, model) for path, model in _models("trainer", TrainerConfig)]
    return "".join(parts)


def _section(path: str, model: type[BaseModel]) -> str:
    """One section of a reference: the model's docstring and a table of its fields."""
    doc = (model.__doc__ or "").strip()
    parts = [f"\n## `{path}`\n"]
    if doc:
        parts.append(" ".join(line.strip() for line in doc.splitlines()) + "\n")
    parts.append("\n| field | type | default | meaning |\n| --- | --- | --- | --- |\n")
    for name, field in model.model_fields.items():
        parts.append(
            f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} "
            f"| {field.description or ''} |\n"
        )
    return "".join(parts)


def _models(path: str, model: type[BaseModel]) -> Iterator[tuple[str, type[BaseModel]]]:
    yield path, model
    for name, field in model.model_fields.items():
        nested = [t for t in _flatten(field.annotation) if _is_model(t)]
        for child in nested:
            label = f"{path}.{name}"
            if len(nested) > 1:
                tag = child.model_fields["type"].default
                label += f" (type: {tag})"
            yield from _models(label, child)


def _flatten(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin in (typing.Union, UnionType):
        return [t for arg in typing.get_args(annotation) for t in _flatten(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _type_name(annotation: Any) -> str:
    names = []
    for part in _flatten(annotation):
        if part is type(None):
            names.append("null")
        elif _is_model(part):
            names.append("mapping")
        elif typing.get_origin(part) is typing.Literal:
            names.append(" \\| ".join(json.dumps(v) for v in typing.get_args(part)))
        elif typing.get_origin(part) in (list, dict):
            arguments = ", ".join(_type_name(arg) for arg in typing.get_args(part))
            names.append(f"{typing.get_origin(part).__name__}[{arguments}]")
        else:
            names.append(getattr(part, "__name__", str(part)))
    unique = list(dict.fromkeys(names))
    return " \\| ".join(unique).replace("|", "\\|").replace("\\\\|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    factory = field.default_factory
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{json.dumps(value, default=str)}`"


LOOP_HEADER = """\
# Configuration reference of the loop (loop.yaml)

Generated from the pydantic models in `src/mlip_autopipec/config/` by
`python -m mlip_autopipec.config_reference loop > docs/loop_configuration.md`; do not edit by
hand. The how-to is docs/how-to/loop.md.

`loop.yaml` has four sections: `trainer` (as in docs/configuration.md), `oracle`, `explorer`
and `loop`. Unknown keys are errors; every error names the field's path.
"""


def render_loop_reference() -> str:
    """The Markdown reference of the loop's own sections (oracle, explorer, loop)."""
    from mlip_autopipec.config.loop import LoopConfig

    parts = [LOOP_HEADER]
    for section in ("oracle", "explorer", "loop"):
        annotation = LoopConfig.model_fields[section].annotation
        model = next(t for t in _flatten(annotation) if _is_model(t))
        parts += [_section(path, nested) for path, nested in _models(section, model)]
    return "".join(parts)


if __name__ == "__main__":
    import sys

    print(render_loop_reference() if sys.argv[1:] == ["loop"] else render_reference(), end="")
