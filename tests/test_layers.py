"""The layers of the package import one way (docs/architecture-layout.md).

Every import counts, at module level or inside a function (a lazy import that hides an import up
a layer is still one): a module imports only its own package and the floors below it; packages
on one floor do not import each other; inside ``infrastructure/`` the trainer stands above
pacemaker's files, which stand above the run directory; the sub-packages and modules of
``infrastructure/trainer/`` import each other without a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mlip_autopipec"
NAME = "mlip_autopipec"
#: The floors, top to bottom: a module imports its own package and the floors below.
#: ``mlip_autopipec`` is the package's face (its __init__.py): the public names.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("mlip_autopipec", "__main__"),
    ("cli",),
    ("loop",),
    ("report",),
    ("infrastructure", "demo"),
    ("analysis", "explorer", "oracle"),
    ("domain_models", "config_reference"),
    ("config",),
    ("errors", "files", "version"),
)
#: The floors inside infrastructure/, top to bottom.
INFRASTRUCTURE_FLOORS: tuple[tuple[str, ...], ...] = (
    ("trainer", "oracle_jobs"),
    ("pacemaker", "scheduler"),
    ("rundir", "job_script"),
)
TRAINER = "infrastructure.trainer"


def imports(path: Path) -> list[tuple[int, str, bool]]:
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


def module_name(path: Path, package: Path) -> str:
    """``infrastructure.trainer.plan`` for ``package/infrastructure/trainer/plan.py`` (the
    package's own __init__.py is ``mlip_autopipec``)."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or NAME


def own_imports(path: Path, package: Path) -> list[tuple[int, str, bool]]:
    """The imports of ``path`` of the package's modules, named without ``mlip_autopipec.``
    (the package's face: ``mlip_autopipec``)."""
    found = []
    for line, name, top_level in imports(path):
        if name == NAME:
            found.append((line, NAME, top_level))
        elif name.startswith(NAME + "."):
            found.append((line, name.removeprefix(NAME + "."), top_level))
    return found


def _floor(name: str, floors: tuple[tuple[str, ...], ...]) -> int | None:
    head = name.split(".")[0]
    return next((i for i, floor in enumerate(floors) if head in floor), None)


def _wrong_way(importer: str, imported: str, floors: tuple[tuple[str, ...], ...]) -> str | None:
    """Why ``importer`` must not import ``imported`` on ``floors``; None when it may."""
    if importer.split(".")[0] == imported.split(".")[0]:
        return None  # its own package (checked inside where floors are given for it)
    mine, theirs = _floor(importer, floors), _floor(imported, floors)
    if mine is None or theirs is None:
        return (
            f"{importer.split('.')[0] if mine is None else imported.split('.')[0]} is on no floor"
        )
    if theirs < mine:
        return "up a floor"
    if theirs == mine:
        return "a sibling on the same floor"
    return None


def violations(package: Path) -> list[str]:
    """Every import of ``package`` that runs up a layer or sideways to a sibling."""
    found = []
    for path in sorted(package.rglob("*.py")):
        importer = module_name(path, package)
        for line, imported, top_level in own_imports(path, package):
            where = f"{path.relative_to(package)}:{line}"
            lazy = "" if top_level else " (in a function)"
            why = _wrong_way(importer, imported, FLOORS)
            if (
                why is None
                and importer.startswith("infrastructure.")
                and imported.startswith("infrastructure.")
            ):
                inner = importer.removeprefix("infrastructure.")
                why = _wrong_way(
                    inner, imported.removeprefix("infrastructure."), INFRASTRUCTURE_FLOORS
                )
            if why is not None:
                found.append(f"{where} imports {imported}{lazy}: {why}")
    return found


def trainer_graph(package: Path) -> dict[str, set[str]]:
    """The imports among the parts of infrastructure/trainer/: each sub-package and each module
    beside them is one part (``__init__``: the package's face, the factory)."""
    graph: dict[str, set[str]] = {}
    root = package / "infrastructure" / "trainer"
    for path in sorted(root.rglob("*.py")):
        part = path.relative_to(root).parts[0].removesuffix(".py")
        edges = graph.setdefault(part, set())
        for _, imported, _ in own_imports(path, package):
            if imported == TRAINER:
                edges.add("__init__")
            elif imported.startswith(TRAINER + "."):
                edges.add(imported.removeprefix(TRAINER + ".").split(".")[0])
        edges.discard(part)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (one path around each strongly connected part)."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            found.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_on_a_floor() -> None:
    heads = {module_name(path, PACKAGE).split(".")[0] for path in _modules()}
    on_floors = {name for floor in FLOORS for name in floor}
    assert heads <= on_floors
    # The packages still to come are placed already: their imports are checked once merged.
    assert {"loop", "explorer", "oracle"} <= on_floors
    assert {"config_model.py", "potential.py", "pacemaker_trainer.py", "claim.py"} <= {
        path.name for path in _modules()
    }


def test_no_import_runs_up_a_layer_or_to_a_sibling() -> None:
    assert violations(PACKAGE) == []


def test_the_trainers_parts_import_each_other_without_a_cycle() -> None:
    graph = trainer_graph(PACKAGE)
    assert {"batch", "cost", "generations", "interrupted", "programs", "__init__"} <= set(graph)
    assert cycles(graph) == []


def test_pacemakers_files_know_no_trainer() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line} imports {name}"
        for path in sorted((PACKAGE / "infrastructure" / "pacemaker").rglob("*.py"))
        for line, name, _ in own_imports(path, PACKAGE)
        if name.startswith(TRAINER)
    ]
    assert wrong == []


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_pyace_is_imported_only_where_a_potential_is_evaluated(path: Path) -> None:
    at_import = [
        f"{path.relative_to(PACKAGE)}:{line} imports {name} at module level"
        for line, name, top_level in imports(path)
        if top_level and name.split(".")[0] == "pyace"
    ]
    assert at_import == []


def _plant(package: Path, relative: str, text: str) -> None:
    path = package / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checks_find_what_is_planted(tmp_path: Path) -> None:
    package = tmp_path / NAME
    _plant(package, "__init__.py", "from mlip_autopipec.cli import main\n")
    _plant(package, "cli/__init__.py", "from mlip_autopipec import __version__\n")
    _plant(package, "config/model.py", "import numpy\nfrom mlip_autopipec.errors import E\n")
    _plant(
        package,
        "domain_models/potential.py",
        "def f():\n    from mlip_autopipec.report import build_report\n",
    )
    _plant(package, "oracle/xtb.py", "from mlip_autopipec.analysis import safety\n")
    _plant(package, "loop/run.py", "from mlip_autopipec.infrastructure.trainer import x\n")
    trainer = "mlip_autopipec.infrastructure.trainer"
    _plant(package, "infrastructure/pacemaker/log.py", f"import {trainer}.plan\n")
    _plant(package, "infrastructure/trainer/plan.py", f"from {trainer}.batch import r\n")
    _plant(package, "infrastructure/trainer/batch/runner.py", f"from {trainer}.plan import p\n")
    _plant(package, "infrastructure/trainer/cost/budget.py", f"from {trainer}.plan import p\n")

    assert imports(package / "config" / "model.py") == [
        (1, "numpy", True),
        (2, "mlip_autopipec.errors", True),
    ]
    assert violations(package) == [
        "cli/__init__.py:1 imports mlip_autopipec: up a floor",
        "domain_models/potential.py:2 imports report (in a function): up a floor",
        "infrastructure/pacemaker/log.py:1 imports infrastructure.trainer.plan: up a floor",
        "oracle/xtb.py:1 imports analysis: a sibling on the same floor",
    ]
    assert cycles(trainer_graph(package)) == [["batch", "plan", "batch"]]
