"""Baseline decoders on the frozen DINOv3 backbone, built from segmentation_models_pytorch's decoder modules.

Each is `Cls(in_channels, num_classes, **options)` mapping `Features` to logits (DESIGN.md, Decoder contract), at
smp's default width (`unet`, `upernet`, `dpt`) or at SegDINO's trainable-parameter budget (`*-small`, budget.py).
UNet and UPerNet read a parameter-free stride 4..32 pyramid of the taps (pyramid.py); DPT reassembles the taps itself.
Each decoder's `config` attribute holds the configuration it was built with (the widths a `-small` variant chose).
"""
from baselines.dpt import DPTHead, dpt_small
from baselines.unet import UNetHead, unet_small
from baselines.upernet import UPerNetHead, upernet_small

__all__ = ["DPTHead", "UNetHead", "UPerNetHead", "dpt_small", "unet_small", "upernet_small"]
