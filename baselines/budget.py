"""Parameter-matched widths: the `-small` baselines get SegDINO's trainable-parameter budget on the same backbone.

A report that compares decoders should separate decoder design from decoder size. Each `-small` variant picks the
width (from a fixed grid) whose trainable-parameter count is closest to SegDINO's head for the same `in_channels` and
`num_classes` (2,213,793 for ViT-S and one class, 2,766,753 for ViT-B; REFERENCE.md §1). Candidates are built on the
meta device, so the search costs milliseconds and allocates nothing.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from segdino.head import SegDINOHead


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def segdino_budget(in_channels: int, num_classes: int) -> int:
    """Trainable parameters of SegDINO's head (REFERENCE.md §1) for these channels and classes."""
    with torch.device("meta"):
        return num_parameters(SegDINOHead(in_channels, num_classes))


def match_width(build: Callable[[int], nn.Module], budget: int, candidates: Iterable[int]) -> int:
    """The candidate width whose module, `build(width)`, has the parameter count closest to `budget`.

    Parameter counts grow with width, so a bisection finds the first candidate at or above the budget and the
    answer is it or its predecessor (a handful of meta-device builds).
    """
    widths = sorted(candidates)

    def count(width: int) -> int:
        with torch.device("meta"):
            return num_parameters(build(width))

    lo, hi = 0, len(widths) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if count(widths[mid]) < budget:
            lo = mid + 1
        else:
            hi = mid
    near = widths[max(lo - 1, 0):lo + 1]
    return min(near, key=lambda w: abs(count(w) - budget))
