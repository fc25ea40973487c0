"""U-Net on the frozen ViT: smp's UnetDecoder and SegmentationHead on the parameter-free tap pyramid.

Key `unet` is smp.Unet's default decoder: 5 blocks of (nearest x2 upsampling, concatenation with the pyramid level of
that stride, two 3x3 conv + BatchNorm + ReLU) with channels (256, 128, 64, 32, 16), no attention, no center block,
then SegmentationHead = one 3x3 conv to the classes. Logits come out at stride 1 (the input size). Initialised as
smp.Unet is (`initialize_decoder`, `initialize_head`). Trainable parameters (one class): 3,612,497 on ViT-S,
6,045,521 on ViT-B (SegDINO: 2,213,793 and 2,766,753).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from segmentation_models_pytorch.base import SegmentationHead
from segmentation_models_pytorch.base import initialization as smp_init
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from torch import nn

from baselines.budget import match_width, segdino_budget
from baselines.pyramid import TapPyramid, pyramid_channels
from segdino.backbone import Features

DEFAULT_CHANNELS = (256, 128, 64, 32, 16)  # smp.Unet's default decoder_channels


class UNetHead(nn.Module):
    """Features -> logits at the input size through smp's U-Net decoder (configuration in the module docstring)."""

    output_stride = 1
    upsample_align_corners = False  # logits already have the input size: the Segmenter never resizes them

    def __init__(self, in_channels: int, num_classes: int = 1, decoder_channels: Sequence[int] = DEFAULT_CHANNELS,
                 use_norm: str | bool = "batchnorm", attention_type: str | None = None,
                 interpolation_mode: str = "nearest"):
        super().__init__()
        self.config = {"decoder_channels": list(decoder_channels), "use_norm": use_norm,
                       "attention_type": attention_type, "interpolation_mode": interpolation_mode}
        self.pyramid = TapPyramid()
        self.decoder = UnetDecoder(
            encoder_channels=pyramid_channels(in_channels), decoder_channels=tuple(decoder_channels),
            n_blocks=len(decoder_channels), use_norm=use_norm, attention_type=attention_type,
            add_center_block=False, interpolation_mode=interpolation_mode)
        self.head = SegmentationHead(decoder_channels[-1], num_classes, kernel_size=3)
        smp_init.initialize_decoder(self.decoder)
        smp_init.initialize_head(self.head)

    def forward(self, features: Features) -> torch.Tensor:
        return self.head(self.decoder(self.pyramid(features.taps)))


def small_channels(width: int) -> tuple[int, ...]:
    """smp's halving progression from `width`: (w, w/2, w/4, w/8, w/16), as (256, ..., 16) is from 256."""
    return tuple(width // 2 ** i for i in range(5))


def unet_small(in_channels: int, num_classes: int = 1, width: int | None = None, **options) -> UNetHead:
    """`unet-small`: UNetHead with channels `small_channels(width)`, `width` the multiple of 16 whose trainable
    parameters are closest to SegDINO's on the same backbone. ViT-S: width 176 -> (176, 88, 44, 22, 11),
    2,230,647 parameters (+0.8% vs SegDINO); ViT-B: width 128 -> (128, 64, 32, 16, 8), 2,728,425 (-1.4%). One class."""
    if width is None:
        width = match_width(lambda w: UNetHead(in_channels, num_classes, small_channels(w), **options),
                            segdino_budget(in_channels, num_classes), range(16, 513, 16))
    return UNetHead(in_channels, num_classes, small_channels(width), **options)
