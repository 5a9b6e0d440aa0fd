"""``python -m mlip_autopipec.cli``: the same as ``python -m mlip_autopipec``."""

from __future__ import annotations

import sys

from mlip_autopipec.cli import main

sys.exit(main())
