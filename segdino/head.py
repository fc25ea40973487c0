"""The SegDINO decoder exactly as in the paper-era public code (REFERENCE.md §1).

Per tap a 1x1 projection (C -> 96, 192, 384, 768) and a bias-free 3x3 conv to 128 channels; the four stride-16 maps
are concatenated (512 channels) and a 1x1 conv gives the logits. No normalisation and no nonlinearity: the paper's
"MLP" is affine. For ViT-S and one class this is 2,213,793 trainable parameters (the paper's 2.21M).
Module names follow the public code (`projects`, `scratch.layer{1..4}_rn`, `scratch.output_conv`) so its checkpoints
import by name.
"""
from __future__ import annotations

import torch
from torch import nn

from segdino.backbone import Features

PROJECT_CHANNELS = (96, 192, 384, 768)
FUSE_CHANNELS = 128


class _Scratch(nn.Module):
    def __init__(self, num_classes: int, project_channels, features: int):
        super().__init__()
        for i, c in enumerate(project_channels, start=1):
            setattr(self, f"layer{i}_rn", nn.Conv2d(c, features, kernel_size=3, padding=1, bias=False))
        self.output_conv = nn.Conv2d(features * len(project_channels), num_classes, kernel_size=1)


class SegDINOHead(nn.Module):
    """Logits at stride 16 from the four taps; the Segmenter upsamples x16 bilinearly (align_corners=True)."""

    output_stride = 16
    upsample_align_corners = True

    def __init__(self, in_channels: int, num_classes: int = 1,
                 project_channels: tuple[int, ...] = PROJECT_CHANNELS, features: int = FUSE_CHANNELS):
        super().__init__()
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, c, kernel_size=1) for c in project_channels)
        self.scratch = _Scratch(num_classes, project_channels, features)

    def forward(self, features: Features) -> torch.Tensor:
        fused = [getattr(self.scratch, f"layer{i}_rn")(project(tap))
                 for i, (project, tap) in enumerate(zip(self.projects, features.taps), start=1)]
        return self.scratch.output_conv(torch.cat(fused, dim=1))
