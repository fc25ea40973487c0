"""UPerNet on the frozen ViT: smp's UPerNetDecoder and SegmentationHead on the parameter-free tap pyramid.

Key `upernet` is smp.UPerNet's default: LayerNorm on each pyramid level (stride 4..32), a PSP module (pool sizes
1, 2, 3, 6) on stride 32, an FPN with 1x1 laterals and 3x3 convs, fusion of the four levels at stride 4 by a 3x3 conv,
all 256 channels with BatchNorm + ReLU; then SegmentationHead = a 1x1 conv to the classes and bilinear x4 upsampling
(align_corners=True), so logits come out at stride 1. Initialised as smp.UPerNet is.
Trainable parameters (one class): 8,070,401 on ViT-S, 9,646,337 on ViT-B (SegDINO: 2,213,793 and 2,766,753).
"""
from __future__ import annotations

import torch
from segmentation_models_pytorch.base import SegmentationHead
from segmentation_models_pytorch.base import initialization as smp_init
from segmentation_models_pytorch.decoders.upernet.decoder import UPerNetDecoder
from torch import nn

from baselines.budget import match_width, segdino_budget
from baselines.pyramid import TapPyramid, pyramid_channels
from segdino.backbone import Features


class UPerNetHead(nn.Module):
    """Features -> logits at the input size through smp's UPerNet decoder (configuration in the module docstring)."""

    output_stride = 1
    upsample_align_corners = True  # the head's own x4 upsampling uses align_corners=True, as smp.UPerNet does

    def __init__(self, in_channels: int, num_classes: int = 1, decoder_channels: int = 256,
                 use_norm: str | bool = "batchnorm"):
        super().__init__()
        self.config = {"decoder_channels": decoder_channels, "use_norm": use_norm}
        self.pyramid = TapPyramid()
        self.decoder = UPerNetDecoder(encoder_channels=pyramid_channels(in_channels), encoder_depth=5,
                                      decoder_channels=decoder_channels, use_norm=use_norm)
        self.head = SegmentationHead(decoder_channels, num_classes, kernel_size=1, upsampling=4)
        smp_init.initialize_decoder(self.decoder)
        smp_init.initialize_head(self.head)

    def forward(self, features: Features) -> torch.Tensor:
        return self.head(self.decoder(self.pyramid(features.taps)))


def upernet_small(in_channels: int, num_classes: int = 1, width: int | None = None, **options) -> UPerNetHead:
    """`upernet-small`: UPerNetHead with `decoder_channels=width`, the multiple of 8 whose trainable parameters are
    closest to SegDINO's on the same backbone. ViT-S: 120 channels,
    2,168,953 parameters (-2.0% vs SegDINO); ViT-B: 112 channels, 2,627,057 (-5.0%). One class."""
    if width is None:
        width = match_width(lambda w: UPerNetHead(in_channels, num_classes, w, **options),
                            segdino_budget(in_channels, num_classes), range(8, 513, 8))
    return UPerNetHead(in_channels, num_classes, width, **options)
