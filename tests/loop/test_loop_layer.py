"""The loop is the top layer under the CLI: only the CLI (and the package's lazy public entry
points) import it, and it imports no CLI."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "mlip_autopipec"


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_only_the_cli_imports_the_loop() -> None:
    allowed = {PACKAGE / "__init__.py"}
    importers = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path not in allowed
        and path.parent.name not in ("cli", "loop")
        and any(name.startswith("mlip_autopipec.loop") for name in _imported(path))
    ]
    assert importers == []


def test_the_loop_imports_no_cli() -> None:
    wrong = [
        str(path.relative_to(PACKAGE))
        for path in (PACKAGE / "loop").rglob("*.py")
        if any(name.startswith("mlip_autopipec.cli") for name in _imported(path))
    ]
    assert wrong == []


def test_the_public_api_has_the_loop() -> None:
    import mlip_autopipec
    from mlip_autopipec.loop import resume_loop, run_loop

    assert mlip_autopipec.run_loop is run_loop and mlip_autopipec.resume_loop is resume_loop
