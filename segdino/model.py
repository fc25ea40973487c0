"""Segmenter: a backbone, a decoder, and the one place that decides whether the backbone is frozen."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from segdino.backbone import Features


class Segmenter(nn.Module):
    """Backbone -> Features -> decoder -> logits upsampled to the input size.

    With `freeze_backbone` (the paper's setting) the backbone has no trainable parameter, runs under
    `torch.no_grad()` (not inference_mode, which would break autograd in the decoder) and stays in eval mode
    whatever `train()` is called with. `freeze_backbone=False` reproduces the public code, which never froze it.
    """

    def __init__(self, backbone: nn.Module, decoder: nn.Module, freeze_backbone: bool = True):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.freeze_backbone = freeze_backbone
        for p in backbone.parameters():
            p.requires_grad_(not freeze_backbone)
        self.train(False)

    def train(self, mode: bool = True) -> "Segmenter":
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def features(self, images: torch.Tensor) -> Features:
        context = torch.no_grad() if self.freeze_backbone else contextlib.nullcontext()
        with context:
            return self.backbone(images)

    def decode(self, features: Features, size: tuple[int, int]) -> torch.Tensor:
        """Decoder logits upsampled to `size`; the entry point of training from cached features."""
        logits = self.decoder(features)
        if tuple(logits.shape[-2:]) != tuple(size):
            align = getattr(self.decoder, "upsample_align_corners", False)
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=align)
        return logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.features(images), tuple(images.shape[-2:]))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def count_parameters(model: Segmenter) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"trainable_params": trainable, "frozen_params": frozen}
