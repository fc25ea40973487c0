"""Import of checkpoints saved by the public SegDINO training code at its paper-era revision (REFERENCE.md §1).

Such a file holds `backbone.*` in Meta's DINOv3 key layout and `head.*` with the public head's names. Both halves
are imported strictly: any missing, unexpected or mis-shaped tensor is an error naming it (the public test script
loads with strict=False and silently leaves missing layers random). The public code never froze its backbone, so
the imported backbone is a fine-tuned one and is kept as such.
"""
from __future__ import annotations

from pathlib import Path

import torch

from segdino.backbone import BackboneError, build_backbone, load_backbone_weights, read_state_dict
from segdino.head import SegDINOHead
from segdino.model import Segmenter


def split_public_state(state: dict[str, torch.Tensor], source: str) -> tuple[dict, dict]:
    backbone = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    head = {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
    other = [k for k in state if not k.startswith(("backbone.", "head."))]
    if other or not backbone or not head:
        raise BackboneError(f"{source} is not a public SegDINO checkpoint: expected only backbone.* and head.* keys "
                            f"(found {len(backbone)} backbone, {len(head)} head, other: {other[:3]})")
    return backbone, head


def load_public_checkpoint(path: str | Path, backbone_name: str) -> Segmenter:
    """A Segmenter holding the checkpoint's (fine-tuned) backbone and head, backbone marked trainable."""
    path = Path(path)
    backbone_state, head_state = split_public_state(read_state_dict(path), str(path))
    backbone = build_backbone(backbone_name)
    load_backbone_weights(backbone.vit, backbone_name, backbone_state, str(path))
    num_classes = head_state["scratch.output_conv.weight"].shape[0] if "scratch.output_conv.weight" in head_state else 1
    head = SegDINOHead(backbone.embed_dim, num_classes)
    expected = head.state_dict()
    problems = sorted(set(expected) ^ set(head_state))
    problems += [k for k in expected if k in head_state and head_state[k].shape != expected[k].shape]
    if problems:
        raise BackboneError(f"{path}: head does not match the paper-era SegDINO head on '{backbone_name}': "
                            f"{', '.join(problems[:4])}")
    head.load_state_dict(head_state, strict=True)
    return Segmenter(backbone, head, freeze_backbone=False)


def to_public_state(model: Segmenter) -> dict[str, torch.Tensor]:
    """The inverse, for tests and for handing a model back to the public code: `head.*` plus `backbone.*` in
    Meta's layout."""
    from segdino.meta_layout import timm_to_meta

    state = {f"backbone.{k}": v for k, v in timm_to_meta(model.backbone.vit.state_dict()).items()}
    state.update({f"head.{k}": v for k, v in model.decoder.state_dict().items()})
    return state
