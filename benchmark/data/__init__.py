"""Dataset loaders for the layouts users download (see benchmark.data.registry in DESIGN.md)."""
from benchmark.data.msd import KNOWN_BAD as _MSD_KNOWN_BAD

# Samples a loader leaves out by a recorded rule, by file stem, with the reason; `segbench score` follows them too.
KNOWN_BAD_SAMPLES: dict[str, str] = {**{stem: f"MSD: {why}" for stem, why in _MSD_KNOWN_BAD.items()}}
