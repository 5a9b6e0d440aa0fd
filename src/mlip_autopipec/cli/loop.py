"""The CLI's ``loop`` command: run, resume, report on an active-learning loop."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlip_autopipec.cli.common import EXIT_OK, UsageError, log, read_data

LOOP_ACTIONS = ("status", "report")


def add_loop_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    loop = commands.add_parser(
        "loop",
        help="active learning: explore with MD, label what the potential does not know, retrain",
        description=(
            "Run the active-learning loop of CONFIG (loop.yaml: trainer, oracle, explorer, loop) "
            "into OUT: generation 0 from --data (or from oracle labels of rattled --structures), "
            "then MD from --structures with the current potential -> D-optimal selection of the "
            "extrapolating frames -> oracle labels -> the next generation, until MD no longer "
            "extrapolates or a cap (iterations, oracle calls, wall time) is reached. "
            "'loop --resume LOOP_DIR' continues an interrupted loop at the step where it "
            "stopped; 'loop status LOOP_DIR' says where a loop is; 'loop report LOOP_DIR' "
            "redraws its report."
        ),
    )
    loop.add_argument("action", nargs="?", choices=LOOP_ACTIONS, help="status or report")
    loop.add_argument("loop_dir", nargs="?", type=Path, metavar="LOOP_DIR")
    loop.add_argument("--config", type=Path, help="loop.yaml (with --resume: a new loop: section)")
    loop.add_argument(
        "--structures", type=Path, help="starting structures of the MD (any ASE format)"
    )
    loop.add_argument(
        "--data", type=Path, default=None, help="labelled structures for generation 0"
    )
    loop.add_argument(
        "--test-data",
        type=Path,
        default=None,
        help="labelled structures never trained on: every generation's errors on them",
    )
    loop.add_argument("--out", type=Path, help="the loop's directory: new or empty")
    loop.add_argument("--resume", type=Path, metavar="LOOP_DIR", help="continue this loop")


def loop(args: argparse.Namespace) -> int:
    """``loop``: one of run, resume, status, report."""
    if args.action is not None:
        return _action(args)
    if args.loop_dir is not None:
        raise UsageError(f"unknown loop action '{args.loop_dir}': use {', '.join(LOOP_ACTIONS)}")
    from mlip_autopipec.config.loop import load_loop_config
    from mlip_autopipec.loop import resume_loop, run_loop

    if args.resume is not None:
        extra = [f"--{name}" for name in ("structures", "data", "out") if getattr(args, name)]
        if extra or args.test_data is not None:
            raise UsageError(
                "--resume continues a loop with the inputs it was started with: "
                f"{', '.join(extra or ['--test-data'])} cannot be given"
            )
        config = None if args.config is None else load_loop_config(args.config)
        result = resume_loop(args.resume, config=config)
    else:
        missing = [
            f"--{name}" for name in ("config", "structures", "out") if not getattr(args, name)
        ]
        if missing:
            raise UsageError(f"loop needs {', '.join(missing)} (or --resume LOOP_DIR)")
        config = load_loop_config(args.config)
        structures = _read_structures(args.structures)
        cutoff = config.trainer.cutoff  # generation 0's fit reuses the check's neighbour searches
        data = None if args.data is None else read_data(args.data, False, cutoff)
        test_data = None if args.test_data is None else read_data(args.test_data, False)
        result = run_loop(config, structures, args.out, data=data, test_data=test_data)
    print(f"loop stopped ({result.stop_reason}): {result.message}")
    print(f"oracle calls: {result.oracle_calls}; last generation: {result.last_generation}")
    print(f"report: {result.loop_dir / 'report' / 'loop_report.html'}")
    return EXIT_OK


def _action(args: argparse.Namespace) -> int:
    if args.loop_dir is None:
        raise UsageError(f"loop {args.action} needs LOOP_DIR")
    from mlip_autopipec.loop import loop_status, write_loop_report

    if args.action == "status":
        print(loop_status(args.loop_dir))
    else:
        print(f"report: {write_loop_report(args.loop_dir)}")
    return EXIT_OK


def _read_structures(path: Path) -> list:  # type: ignore[type-arg]
    import ase.io
    from ase import Atoms

    if not path.exists():
        raise UsageError(f"--structures {path}: no such file")
    try:
        images = ase.io.read(path, index=":")
    except Exception as error:  # ASE raises many types for unreadable files
        raise UsageError(f"--structures {path}: ASE cannot read it ({error})") from error
    images = [images] if isinstance(images, Atoms) else list(images)
    if not images:
        raise UsageError(f"--structures {path} holds no structure")
    log.info("%d starting structures from %s", len(images), path)
    return images


def demo_loop(args: argparse.Namespace) -> int:
    """``demo --loop``: a small EMT Cu loop (a few minutes on two cores)."""
    from mlip_autopipec.loop import run_loop
    from mlip_autopipec.loop.demo import demo_loop_config, demo_loop_structures

    result = run_loop(demo_loop_config(), demo_loop_structures(), args.out)
    print(f"loop stopped ({result.stop_reason}): {result.message}")
    print(f"report: {result.loop_dir / 'report' / 'loop_report.html'}")
    return EXIT_OK
