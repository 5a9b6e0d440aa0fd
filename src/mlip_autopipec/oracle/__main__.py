"""``python -m mlip_autopipec.oracle CHUNK.json``: what a batch job of the oracle runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlip_autopipec.oracle.chunk import label_chunk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlip_autopipec.oracle",
        description="Label the structures of a chunk file into the label cache it names.",
    )
    parser.add_argument("chunk", type=Path, help="the chunk file (JSON) written by the loop")
    arguments = parser.parse_args(argv)
    try:
        labelled, failed = label_chunk(arguments.chunk)
    except (OSError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        print(f"error: cannot label {arguments.chunk}: {error}", file=sys.stderr, flush=True)
        return 2
    print(f"done: {labelled} labelled, {failed} failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
