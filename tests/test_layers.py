"""The layers of the package: config/ and domain_models/ import nothing from the layers above."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mlip_autopipec"
LOWER_LAYERS = ("config", "domain_models")
#: What a lower layer must not import: the layers above it and the CLI.
ABOVE = (
    "mlip_autopipec.analysis",
    "mlip_autopipec.infrastructure",
    "mlip_autopipec.report",
    "mlip_autopipec.cli",
    "mlip_autopipec.oracle",
    "mlip_autopipec.demo",
)


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module, at module level) of every import statement of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: a relative import"
            names = [node.module or ""]
        else:
            continue
        found += [(node.lineno, name, id(node) in top_level) for name in names]
    return found


def _modules() -> list[Path]:
    return sorted(path for layer in LOWER_LAYERS for path in (PACKAGE / layer).rglob("*.py"))


def test_the_lower_layers_are_found() -> None:
    names = {path.name for path in _modules()}
    assert {"config_model.py", "potential.py", "deployment.py", "dataset.py"} <= names


@pytest.mark.parametrize("path", _modules(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_no_import_from_a_layer_above(path: Path) -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line} imports {name}"
        for line, name, _ in _imports(path)
        if name.startswith(ABOVE)
    ]
    assert wrong == []


@pytest.mark.parametrize("path", _modules(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_pyace_is_imported_only_where_a_potential_is_evaluated(path: Path) -> None:
    at_import = [
        f"{path.relative_to(PACKAGE)}:{line} imports {name} at module level"
        for line, name, top_level in _imports(path)
        if top_level and name.split(".")[0] == "pyace"
    ]
    assert at_import == []


def test_the_check_finds_an_import_from_above(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "import numpy\nfrom mlip_autopipec.report import build_report\n"
        "def f():\n    import pyace\n    from mlip_autopipec.infrastructure.trainer import x\n"
    )
    assert _imports(module) == [
        (1, "numpy", True),
        (2, "mlip_autopipec.report", True),
        (4, "pyace", False),
        (5, "mlip_autopipec.infrastructure.trainer", False),
    ]
