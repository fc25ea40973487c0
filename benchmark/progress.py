"""When progress bars are drawn: asked for (`progress=True`) and not switched off by the user with tqdm's own
TQDM_DISABLE environment variable (an explicit `disable=` argument would otherwise override it)."""
from __future__ import annotations

import os


def bars_off(progress: bool = True) -> bool:
    """The `disable=` value for a tqdm bar."""
    return not progress or os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes", "on")
