"""A parameter-free stride 4/8/16/32 pyramid from the four stride-16 ViT taps, in smp's encoder contract.

smp's Unet and UPerNet decoders expect an encoder's `[x, stride 2, stride 4, stride 8, stride 16, stride 32]` list and
reject a ViT's all-stride-16 features (REFERENCE.md §6). The taps are turned into that list without parameters, so
every trainable weight of a baseline sits in smp's decoder and head:

    tap 1 (shallowest) -> bilinear x4 upsampling       -> stride 4
    tap 2              -> bilinear x2 upsampling       -> stride 8
    tap 3              -> unchanged                    -> stride 16
    tap 4 (deepest)    -> 2x2 max-pooling, ceil mode   -> stride 32

Shallow taps go to the fine strides and deep ones to the coarse strides, as in ViTDet's simple feature pyramid and
DPT's reassembly, but with fixed resampling instead of learned (de)convolutions: the learned part belongs to the
decoder under comparison, not to an adapter. Max-pooling for stride 32 follows ViTDet; ceil mode keeps every tap
pixel for odd grids. The decoders never see the image, so `x` (stride 1) and stride 2 are zero-channel placeholders
of the right spatial size: UnetDecoder reads only x's size, and concatenating a zero-channel skip adds nothing.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TAP_STRIDE = 16  # every DINOv3 tap is at the patch stride (DESIGN.md, Features contract)


def pyramid_channels(in_channels: int) -> list[int]:
    """Channels of the pyramid in smp's `encoder_channels` order: x, stride 2, 4, 8, 16, 32."""
    return [0, 0, in_channels, in_channels, in_channels, in_channels]


class TapPyramid(nn.Module):
    """Four B x C x h x w taps -> `[x (B x 0 x 16h x 16w), s2 (B x 0 x 8h x 8w), s4, s8, s16, s32]` (no parameters)."""

    def forward(self, taps: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(taps) != 4:
            raise ValueError(f"TapPyramid needs the 4 backbone taps, got {len(taps)}")
        t1, t2, t3, t4 = taps
        b, _, h, w = t3.shape
        s4 = F.interpolate(t1, scale_factor=4, mode="bilinear", align_corners=False)
        s8 = F.interpolate(t2, scale_factor=2, mode="bilinear", align_corners=False)
        s32 = F.max_pool2d(t4, kernel_size=2, stride=2, ceil_mode=True)
        x = t3.new_empty(b, 0, h * TAP_STRIDE, w * TAP_STRIDE)
        s2 = t3.new_empty(b, 0, h * TAP_STRIDE // 2, w * TAP_STRIDE // 2)
        return [x, s2, s4, s8, t3, s32]
