"""Baseline decoders (UNet, UPerNet, DPT) on the frozen backbone: see the baselines issue."""
