"""The CLI's ``history`` command: the chain of generations that led to a potential."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlip_autopipec.cli.common import EXIT_OK
from mlip_autopipec.errors import OutputError
from mlip_autopipec.report.history import (
    HISTORY_PNG,
    chain_of,
    format_history,
    history_rows,
    plot_history,
)


def add_history_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    history = commands.add_parser(
        "history",
        help="the chain of generations that led to a potential",
        description=(
            "Print the generations of RUN_DIR back to generation 0 (structures, basis, "
            "iterations, wall time, errors, max gamma of the new structures under the parent) "
            f"and plot them to RUN_DIR/report/mlip_autopipec/{HISTORY_PNG}."
        ),
    )
    history.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    history.add_argument(
        "--overwrite", action="store_true", help=f"replace an existing {HISTORY_PNG}"
    )


def history(run_dir: Path, overwrite: bool) -> int:
    """``history RUN_DIR``: print the chain and plot it (never over a plot without --overwrite)."""
    from mlip_autopipec.report import REPORT_DIR

    path = run_dir / REPORT_DIR / HISTORY_PNG
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists: give --overwrite to replace it", path=path)
    rows = history_rows(chain_of(run_dir))
    print(format_history(rows))
    print(f"plot: {plot_history(rows, path)}")
    return EXIT_OK
