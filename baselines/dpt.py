"""DPT on the frozen ViT: smp's DPT decoder blocks on the four taps, which DPT reassembles into a pyramid itself.

Key `dpt` is smp.DPT's default decoder: readout "cat" (each tap concatenated with the class token, Linear 2C -> C +
GELU), reassembly to strides 4, 8, 16, 32 (1x1 conv to intermediate channels (256, 512, 1024, 1024), then a x4 / x2
transposed conv, identity, or a stride-2 3x3 conv, then a 3x3 conv to 256), four residual fusion blocks (BatchNorm,
x2 bilinear upsampling each, ending at stride 2), and DPTSegmentationHead (3x3 conv + BN + ReLU + dropout 0.1 +
1x1 conv, bilinear x2 with align_corners=True), so logits come out at stride 1. Initialised as smp.DPT is.
Trainable parameters (one class): 30,588,673 on ViT-S, 35,210,497 on ViT-B (SegDINO: 2,213,793 and 2,766,753).

Each tap reads out its own layer's class token (Features.prefix[:, i, :1]), as smp's DPT encoder provides. One
departure from smp.DPT, for input sizes smp does not support:
- when a tap grid is odd (input not a multiple of 32), a fusion block's x2-upsampled output is resized to the next
  level's size before the sum; for even grids this is exactly smp's DPTDecoder.forward.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base import initialization as smp_init
from segmentation_models_pytorch.decoders.dpt.decoder import DPTDecoder, DPTSegmentationHead
from torch import nn

from baselines.budget import match_width, segdino_budget
from baselines.pyramid import TAP_STRIDE
from segdino.backbone import Features

DEFAULT_INTERMEDIATE = (256, 512, 1024, 1024)  # smp.DPT's decoder_intermediate_channels
DEFAULT_FUSION = 256  # smp.DPT's decoder_fusion_channels


class DPTHead(nn.Module):
    """Features -> logits at the input size through smp's DPT decoder (configuration in the module docstring)."""

    output_stride = 1
    upsample_align_corners = True  # the head's own x2 upsampling uses align_corners=True, as smp.DPT does

    def __init__(self, in_channels: int, num_classes: int = 1, readout: Literal["cat", "add", "ignore"] = "cat",
                 intermediate_channels: Sequence[int] = DEFAULT_INTERMEDIATE, fusion_channels: int = DEFAULT_FUSION):
        super().__init__()
        self.config = {"readout": readout, "intermediate_channels": list(intermediate_channels),
                       "fusion_channels": fusion_channels}
        self.readout = readout
        self.decoder = DPTDecoder(
            encoder_out_channels=(in_channels,) * 4, encoder_output_strides=(TAP_STRIDE,) * 4,
            encoder_has_prefix_tokens=True, readout=readout,
            intermediate_channels=tuple(intermediate_channels), fusion_channels=fusion_channels)
        self.head = DPTSegmentationHead(fusion_channels, num_classes, kernel_size=3, upsampling=2)
        smp_init.initialize_decoder(self.decoder)
        smp_init.initialize_head(self.head)

    def forward(self, features: Features) -> torch.Tensor:
        # DINOv3 prefix per tap: the class token, then the registers
        cls = [None if self.readout == "ignore" else features.prefix[:, i, :1] for i in range(len(features.taps))]
        levels = [reassemble(project(tap, token)) for tap, token, project, reassemble in
                  zip(features.taps, cls, self.decoder.projection_blocks, self.decoder.reassemble_blocks)]
        fused = None
        for fusion, level in zip(self.decoder.fusion_blocks, levels[::-1]):  # stride 32 first
            if fused is not None and fused.shape[-2:] != level.shape[-2:]:
                fused = F.interpolate(fused, size=level.shape[-2:], mode="bilinear", align_corners=True)
            fused = fusion(level, fused)
        return self.head(fused)


def small_channels(width: int) -> tuple[tuple[int, ...], int]:
    """smp's default proportions scaled to `width`: intermediate (w, 2w, 4w, 4w), fusion w (as 256 -> 256..1024)."""
    return (width, 2 * width, 4 * width, 4 * width), width


def dpt_small(in_channels: int, num_classes: int = 1, width: int | None = None, readout: str = "add",
              **options) -> DPTHead:
    """`dpt-small`: DPTHead with readout "add" and `small_channels(width)`, `width` the multiple of 8 whose trainable
    parameters are closest to SegDINO's on the same backbone. Readout "cat" alone costs 4 x 2C x C weights (4.7M on
    ViT-B, over SegDINO's whole budget), so the small variant adds the class token instead (no parameters).
    ViT-S: width 64 -> intermediate (64, 128, 256, 256), fusion 64, 2,043,457 parameters (-7.7% vs SegDINO);
    ViT-B: width 72 -> (72, 144, 288, 288), fusion 72, 2,851,849 (+3.1%). One class."""
    def build(w: int) -> DPTHead:
        intermediate, fusion = small_channels(w)
        return DPTHead(in_channels, num_classes, readout, intermediate, fusion, **options)
    if width is None:
        width = match_width(build, segdino_budget(in_channels, num_classes), range(8, 257, 8))
    return build(width)
