"""timm's DINOv3 keys -> Meta's official `.pth` key layout: the inverse of timm's converter (REFERENCE.md §6).

Used to write Meta-layout checkpoints from random timm models for tests and the demo, since no real weights can
be downloaded there. The k third of the qkv bias is absent in timm; Meta's file stores it masked out by
`bias_mask`, so any value works: we write random numbers there to prove they are ignored.
"""
from __future__ import annotations

import torch


def timm_to_meta(state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    dim = state["cls_token"].shape[-1]
    for key, value in state.items():
        if key.endswith("attn.q_bias") or key.endswith("attn.v_bias"):
            continue
        if key == "reg_token":
            out["storage_tokens"] = value
        elif key.endswith(".gamma_1") or key.endswith(".gamma_2"):
            block = key.rsplit(".", 1)[0]
            out[f"{block}.ls{key[-1]}.gamma"] = value
        else:
            out[key] = value
        if key.endswith("attn.qkv.weight"):
            prefix = key[: -len("qkv.weight")]
            k_bias = torch.randn(dim, generator=gen)
            out[f"{prefix}qkv.bias"] = torch.cat([state[f"{prefix}q_bias"], k_bias, state[f"{prefix}v_bias"]])
            out[f"{prefix}qkv.bias_mask"] = torch.cat([torch.ones(dim), torch.zeros(dim), torch.ones(dim)])
    out["mask_token"] = torch.zeros(1, dim)
    n_periods = 16 if dim == 384 else dim // 24
    out["rope_embed.periods"] = torch.ones(n_periods)
    return out
