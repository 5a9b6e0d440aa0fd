"""The middle floor (analysis, explorer, oracle) imports nothing from the layers above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mlip_autopipec"
MIDDLE = ("analysis", "explorer", "oracle")
ABOVE = (
    "mlip_autopipec.infrastructure",
    "mlip_autopipec.report",
    "mlip_autopipec.cli",
    "mlip_autopipec.loop",
    "mlip_autopipec.demo",
)


def _imported(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module or ""))
    return found


def _modules() -> list[Path]:
    return sorted(path for layer in MIDDLE for path in (PACKAGE / layer).rglob("*.py"))


def test_the_middle_floor_is_found() -> None:
    names = {path.name for path in _modules()}
    assert {"extrapolation.py", "md.py", "labelling.py"} <= names


@pytest.mark.parametrize("path", _modules(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_no_import_from_a_layer_above(path: Path) -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line} imports {name}"
        for line, name in _imported(path)
        if name.startswith(ABOVE)
    ]
    assert wrong == []
