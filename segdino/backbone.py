"""The frozen DINOv3 ViT backbone, built through timm, and the features it hands to every decoder.

Weights are an explicit input: a local file or folder (Meta's official `.pth`, a timm state dict or a Hugging Face
transformers checkpoint: segdino.weights), a Hub name the user asked for (`hub:NAME`), or `None` for random
initialisation. Nothing is ever downloaded implicitly.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import io
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from segdino.weights import WeightsError, download_hub_snapshot, hub_error, read_weights


class BackboneError(ValueError):
    """A backbone or weights problem the user can fix; the message says how."""


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str
    taps: tuple[int, ...]
    kwargs: tuple[tuple[str, int], ...] = ()


# Taps: blocks 3, 6, 9, 12 for ViT-S/B and 4, 11, 17, 23 (0-based) for ViT-L (REFERENCE.md §1). Sizes the paper
# does not use take the last block of each quarter. The `_qkvb` variants hold Meta's q/v biases (REFERENCE.md §6).
BACKBONES: dict[str, BackboneSpec] = {
    "dinov3_vits16": BackboneSpec("vit_small_patch16_dinov3_qkvb", (2, 5, 8, 11)),
    "dinov3_vits16plus": BackboneSpec("vit_small_plus_patch16_dinov3_qkvb", (2, 5, 8, 11)),
    "dinov3_vitb16": BackboneSpec("vit_base_patch16_dinov3_qkvb", (2, 5, 8, 11)),
    "dinov3_vitl16": BackboneSpec("vit_large_patch16_dinov3_qkvb", (4, 11, 17, 23)),
    "dinov3_vith16plus": BackboneSpec("vit_huge_plus_patch16_dinov3_qkvb", (7, 15, 23, 31)),
    "dinov3_vit7b16": BackboneSpec("vit_7b_patch16_dinov3", (9, 19, 29, 39)),
    # Tiny DINOv3-architecture model for tests and the demo (REFERENCE.md §6): ~0.25M parameters, random weights.
    "test": BackboneSpec("vit_small_patch16_dinov3_qkvb", (0, 1, 2, 3),
                         (("embed_dim", 64), ("depth", 4), ("num_heads", 2))),
}

# Meta's releases on the Hugging Face Hub, in transformers format (gated: accept the licence first)
HUB_REPOS = {name: f"facebook/dinov3-{name.removeprefix('dinov3_')}-pretrain-lvd1689m"
             for name in BACKBONES if name != "test"}

RANDOM_INIT_SEED = 0
# Meta builds every DINOv3 ViT with pos_embed_rope_rescale_coords=2 (dinov3/hub/backbones.py): in train mode the RoPE
# coordinates are scaled by one log-uniform draw in [1/2, 2] per forward. timm's DINOv3 configs leave it out; we pass
# it so a backbone trained in train mode (the `public-code` preset) behaves like Meta's. A frozen backbone runs in eval
# mode, where it has no effect.
META_ROPE_RESCALE = 2.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def get_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise BackboneError(f"unknown backbone '{name}'; valid: {', '.join(BACKBONES)}")
    return BACKBONES[name]


@functools.lru_cache(maxsize=None)
def embed_dim(name: str) -> int:
    """The channel width of backbone `name`'s tokens, read from its timm model built on the meta device."""
    spec = get_spec(name)
    return timm.create_model(spec.timm_name, pretrained=False, device="meta", **dict(spec.kwargs)).embed_dim


@dataclass
class Features:
    """What a decoder sees: four taps as B x C x H/16 x W/16, and each tap's prefix tokens (class, then the
    registers) as B x 4 x P x C, through the same final LayerNorm (DPT reads each tap's own class token)."""

    taps: list[torch.Tensor]
    prefix: torch.Tensor

    def to(self, *args, **kwargs) -> "Features":
        return Features([t.to(*args, **kwargs) for t in self.taps], self.prefix.to(*args, **kwargs))


class DinoV3Backbone(nn.Module):
    """A timm DINOv3 ViT returning the paper's taps, each through the final LayerNorm (REFERENCE.md §1, §6).

    Takes images as floats in [0, 1] (B x 3 x H x W, H and W multiples of 16) and applies ImageNet mean/std itself,
    so every caller feeds the same thing and the feature cache is keyed by the backbone alone.
    """

    def __init__(self, name: str, model: nn.Module, weights: str | None, weights_sha256: str | None):
        super().__init__()
        self.name = name
        self.vit = model
        self.weights = weights
        self.weights_sha256 = weights_sha256
        self.layer_indices = get_spec(name).taps
        self.embed_dim = model.embed_dim
        self.patch_size = model.patch_embed.patch_size[0]
        self.num_prefix_tokens = model.num_prefix_tokens
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> Features:
        x = (images - self.mean) / self.std
        out = self.vit.forward_intermediates(
            x, indices=list(self.layer_indices), norm=True, output_fmt="NCHW",
            intermediates_only=True, return_prefix_tokens=True,
        )
        return Features([spatial for spatial, _ in out], torch.stack([prefix for _, prefix in out], dim=1))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict at `path` (a file, a shard index or a folder; Meta, timm or transformers layout) in Meta's
    or timm's layout."""
    try:
        return read_weights(path)[0]
    except WeightsError as exc:
        raise BackboneError(str(exc)) from None


def load_backbone_weights(model: nn.Module, name: str, state: dict[str, torch.Tensor], source: str) -> None:
    """Convert Meta's key layout with timm's own converter and load strictly, naming any mismatch."""
    from timm.models.eva import checkpoint_filter_fn

    # timm's converter print()s each block index it cannot find (weights of a deeper model): stdout would carry
    # those lines into `--json` / `--csv` output, and the mismatch is reported below with the fix
    with contextlib.redirect_stdout(io.StringIO()):
        converted = checkpoint_filter_fn(state, model)
    expected = model.state_dict()
    mismatched = [(k, tuple(v.shape), tuple(expected[k].shape)) for k, v in converted.items()
                  if k in expected and v.shape != expected[k].shape]
    if mismatched:
        key, got, want = mismatched[0]
        raise BackboneError(
            f"weights {source} do not fit backbone '{name}': {key} has shape {got} but '{name}' expects {want} "
            f"({len(mismatched)} mismatched tensors); pass the --backbone these weights were trained for")
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise BackboneError(
            f"weights {source} do not fit backbone '{name}': missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
    model.load_state_dict(converted, strict=True)


def tensors_sha256(model: nn.Module) -> str:
    """A SHA-256 of a model's state (names, dtypes, shapes and bytes, in order): about 0.1 s for ViT-S/16."""
    import hashlib

    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def hub_model_name(name: str) -> str:
    """A timm name for `hub:NAME`: a Hub repo id (`timm/vit_..._dinov3_qkvb.lvd1689m`) gets timm's `hf-hub:`
    prefix, which timm requires since 1.0.20; timm model names (`vit_...dinov3_qkvb.lvd1689m`) and prefixed names
    (`hf-hub:...`, `local-dir:...`) pass through."""
    return f"hf-hub:{name}" if "/" in name and ":" not in name else name


def build_backbone(name: str, weights: str | Path | None = None) -> DinoV3Backbone:
    """Build a frozen DINOv3 backbone. `weights`: a file or folder (Meta's `.pth`, timm or Hugging Face
    transformers format, see segdino.weights), `hub:NAME` (explicit download: a timm model or `timm/` repo through
    timm, any other `OWNER/REPO` as a transformers-format snapshot through huggingface_hub), or None (random)."""
    spec = get_spec(name)
    check_timm()
    kwargs = dict(spec.kwargs, rope_rescale_coords=META_ROPE_RESCALE)
    weights = None if weights in (None, "", "none") else str(weights)
    if weights is not None and weights.startswith("hub:"):
        check_hub_variant(name, weights[4:] if is_transformers_repo(weights[4:]) else hub_model_name(weights[4:]))
    if weights is not None and weights.startswith("hub:") and not is_transformers_repo(weights[4:]):
        hub_name = hub_model_name(weights[4:])
        try:
            model = timm.create_model(hub_name, pretrained=True, **kwargs)
        except Exception as exc:
            raise BackboneError(hub_error(hub_name, exc)) from None
        if model.embed_dim != timm.create_model(spec.timm_name, pretrained=False, device="meta", **kwargs).embed_dim:
            raise BackboneError(f"hub weights '{hub_name}' do not match backbone '{name}'")
        # timm read files segbench does not see (a Hub cache, a local-dir: folder): the loaded tensors identify the
        # weights instead, so the feature cache and the report never take other weights of the same name for these
        return _frozen(DinoV3Backbone(name, model, weights, tensors_sha256(model)))
    with torch.random.fork_rng(devices=[]):
        # "random weights" are one fixed draw, the same for every run and seed, so runs compare and features cache.
        # Only the CPU generator (where timm initialises) is seeded and restored: torch.manual_seed would also reset
        # every CUDA generator, which fork_rng(devices=[]) does not restore, and give every seed the same dropout.
        torch.default_generator.manual_seed(RANDOM_INIT_SEED)
        model = timm.create_model(spec.timm_name, pretrained=False, **kwargs)
    sha = None
    if weights is not None:
        try:
            path = download_hub_snapshot(weights[4:]) if weights.startswith("hub:") else Path(weights).expanduser()
            state, sha = read_weights(path)
        except WeightsError as exc:
            raise BackboneError(str(exc)) from None
        load_backbone_weights(model, name, state, weights if weights.startswith("hub:") else str(path))
    return _frozen(DinoV3Backbone(name, model, weights, sha))


PAPER_PRETRAINING = "lvd1689m"   # the paper's weights, dinov3_*_pretrain_lvd1689m (REFERENCE.md §1)


def check_hub_variant(name: str, hub_name: str) -> None:
    """Refuse a timm DINOv3 model other than backbone `name`'s own architecture (the plain `..._dinov3` variant
    drops Meta's q/v biases, REFERENCE.md §6, and would load without a word), and the satellite pretraining, whose
    input normalisation segbench does not apply; warn on any other pretraining than the paper's."""
    spec = get_spec(name)
    if is_transformers_repo(hub_name) and "sat493m" in hub_name:   # Meta's repos: facebook/dinov3-...-sat493m
        raise BackboneError(f"hub weights '{hub_name}' are DINOv3's satellite pretraining, which expects its own "
                            "input mean and std; segbench normalises with ImageNet's, so use --weights "
                            f"hub:{HUB_REPOS.get(name, 'facebook/dinov3-<size>-pretrain-lvd1689m')}")
    if is_transformers_repo(hub_name):   # its architecture is checked by the strict load of its weights
        return
    model = hub_name.removeprefix("hf-hub:").removeprefix("timm/")
    arch, _, tag = model.partition(".")
    if "dinov3" not in arch or ":" in model:   # another model family or a local-dir: path goes to timm as given
        return
    right = f"hub:timm/{spec.timm_name}.{PAPER_PRETRAINING}"
    if arch != spec.timm_name:
        raise BackboneError(f"hub weights '{hub_name}' build timm's {arch}, not backbone {name}'s "
                            f"{spec.timm_name}" + (" (the `_qkvb` variant keeps Meta's q/v biases)"
                                                   if spec.timm_name.endswith("_qkvb") else "")
                            + f"; use --weights {right}")
    if "sat493m" in tag:
        raise BackboneError(f"hub weights '{hub_name}' are DINOv3's satellite pretraining, which expects its own "
                            f"input mean and std; segbench normalises with ImageNet's, so use --weights {right}")
    if tag and tag != PAPER_PRETRAINING:
        import warnings
        warnings.warn(f"hub weights '{hub_name}' are not the paper's {PAPER_PRETRAINING} pretraining: results will "
                      f"not compare with the paper's ({right} is)", stacklevel=3)


@functools.lru_cache(maxsize=None)
def check_timm() -> None:
    """timm builds DINOv3 with Meta's RoPE rescaling from 1.0.30 on; an older timm left in an environment gets a
    one-line error with the fix instead of a TypeError from deep inside timm."""
    from timm.models.eva import Eva

    if "rope_rescale_coords" not in inspect.signature(Eva.__init__).parameters:
        raise BackboneError(f"timm {timm.__version__} is too old for segbench's DINOv3 backbones (it needs timm >= "
                            "1.0.30); run: pip install -U 'timm>=1.0.30'")


def is_transformers_repo(name: str) -> bool:
    """`hub:OWNER/REPO` outside timm's namespace (e.g. `facebook/dinov3-vits16-pretrain-lvd1689m`) names a Hugging
    Face transformers-format repo; timm model names, `timm/` repos and prefixed names (`hf-hub:`) go to timm."""
    return "/" in name and ":" not in name and not name.startswith("timm/")


def _frozen(backbone: DinoV3Backbone) -> DinoV3Backbone:
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()
