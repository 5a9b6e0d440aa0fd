"""pyace and TensorFlow (the pacemaker extra) are imported only where a potential is evaluated."""

from __future__ import annotations

import subprocess
import sys

#: Imports every module of the package (but ``__main__``, which runs the CLI) and prints which
#: modules of the pacemaker extra that loaded.
IMPORT_ALL = """
import importlib, pkgutil, sys
import mlip_autopipec
names = [m.name for m in pkgutil.walk_packages(mlip_autopipec.__path__, "mlip_autopipec.")]
assert len(names) > 30, names
for name in names:
    if not name.endswith("__main__"):
        importlib.import_module(name)
print(sorted(m for m in ("pyace", "tensorflow", "tensorpotential") if m in sys.modules))
"""


def test_importing_every_module_loads_neither_pyace_nor_tensorflow() -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
