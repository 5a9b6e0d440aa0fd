"""``python -m mlip_autopipec``: the same as the ``mlip-autopipec`` command."""

from __future__ import annotations

import sys

from mlip_autopipec.cli import main

sys.exit(main())
