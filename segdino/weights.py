"""Reading DINOv3 weights in the forms users download them, as one state dict in Meta's key layout.

- Meta's official `.pth` (a plain `{key: tensor}` dict, REFERENCE.md §6), read as data only.
- A timm-format state dict (`.pth` or `.safetensors`): timm's converter passes its keys through unchanged.
- Hugging Face transformers format (`DINOv3ViTModel.save_pretrained`, the `facebook/dinov3-*` Hub repos):
  `model.safetensors` or shards listed in `model.safetensors.index.json`, in a folder with `config.json`. Its
  keys are mapped back to Meta's layout here (`hf_to_meta`), the inverse of transformers' own conversion
  script, and then go through the same timm converter and strict load as Meta's file.

A folder (a Hub snapshot, or `save_pretrained`'s output) may be given instead of a file. The SHA-256 identifying
the weights is that of the file, so the same weights reached as a file or as its folder share feature caches;
sharded weights are identified by the hash of their shards' hashes in name order.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import torch

WRAPPER_KEYS = ("model", "state_dict", "teacher")
FOLDER_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
HF_MARKER = "embeddings.patch_embeddings.weight"


class WeightsError(ValueError):
    """A weights file or folder problem the user can fix; the message names the file and the fix."""


def sha256_file(path: Path) -> str:
    """The file's SHA-256, computed once per process for a given (path, size, modification time): a sweep builds
    the backbone for every run, and the larger DINOv3 files take minutes to hash."""
    stat = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_files(path: Path) -> list[Path]:
    """The file(s) holding the weights at `path`: the file itself, a shard index's shards, or a folder's weights
    (`model.safetensors`, a shard index, `pytorch_model.bin`, or its only `.pth` / `.safetensors` file)."""
    path = Path(path).expanduser()
    if path.is_dir():
        for name in FOLDER_FILES:
            if (path / name).is_file():
                return weights_files(path / name)
        candidates = sorted(p for p in path.iterdir() if p.suffix in (".pth", ".pt", ".safetensors") and p.is_file())
        if len(candidates) == 1:
            return candidates
        found = f"found {', '.join(p.name for p in candidates)}" if candidates else "found none"
        raise WeightsError(f"no weights file to choose in folder {path}: expected {' or '.join(FOLDER_FILES)}, "
                           f"or a single .pth/.safetensors file ({found}); pass the file itself with --weights")
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.name.endswith(".safetensors.index.json"):
        try:
            weight_map = json.loads(path.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WeightsError(f"cannot read shard index {path}: {type(exc).__name__}: {exc}") from None
        shards = [path.parent / name for name in sorted(set(weight_map.values()))]
        missing = [p.name for p in shards if not p.is_file()]
        if missing:
            raise WeightsError(f"shard index {path} lists files that are not there: {', '.join(missing[:3])}; "
                               "download every shard into the same folder")
        return shards
    return [path]


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    """One checkpoint file as tensors on the CPU; `.pth` with `weights_only=True` (a file from the internet must
    not run code)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise several types for truncated or foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        why = ("it holds Python objects besides tensors, which segbench does not unpickle: a file from elsewhere "
               "must not run code" if "Weights only load failed" in first else f"{type(exc).__name__}: {first}")
        raise WeightsError(f"cannot read weights file {path}: not a checkpoint of tensors (.pth) or safetensors file, "
                           f"or truncated ({why})") from None
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"weights file {path} does not hold a state dict (found {type(state).__name__})")
    for wrapper in WRAPPER_KEYS:
        if wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    return state


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict at `path` (file, shard index or folder) in Meta's or timm's key layout, and its SHA-256."""
    files = weights_files(Path(path))
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(_read_file(file))
    shas = [sha256_file(f) for f in files]
    sha = shas[0] if len(shas) == 1 else hashlib.sha256("".join(shas).encode()).hexdigest()
    if is_hf_layout(state):
        state = hf_to_meta(state, str(path))
    return state, sha


def is_hf_layout(state: dict[str, torch.Tensor]) -> bool:
    return any(k.endswith(HF_MARKER) for k in state)


def hf_to_meta(state: dict[str, torch.Tensor], source: str = "weights") -> dict[str, torch.Tensor]:
    """Hugging Face transformers `DINOv3ViTModel` keys -> Meta's `.pth` keys.

    transformers splits Meta's fused qkv into q/k/v projections (the k bias, masked to zero in Meta's code, is
    absent: `key_bias=False`), renames `ls1.gamma` to `layer_scale1.lambda1`, the storage tokens to register
    tokens, and the MLP to up/down (plain) or gate/up/down (SwiGLU: Meta's w1/w2/w3) projections. A prefix before
    `embeddings.` (a task model's `dinov3_vit.`) is dropped with every key outside it. Keys this does not know
    are passed on unchanged, so the strict load names them.
    """
    marker = next(k for k in state if k.endswith(HF_MARKER))
    prefix = marker[: -len(HF_MARKER)]
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    direct = {"embeddings.cls_token": "cls_token", "embeddings.register_tokens": "storage_tokens",
              "embeddings.patch_embeddings.weight": "patch_embed.proj.weight",
              "embeddings.patch_embeddings.bias": "patch_embed.proj.bias"}
    out: dict[str, torch.Tensor] = {}
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("layer.")})
    for key, value in state.items():
        if key in direct:
            out[direct[key]] = value
        elif key == "embeddings.mask_token":
            out["mask_token"] = value.reshape(1, -1)
        elif key.startswith("rope_embeddings."):
            continue   # computed from the config, not learned
        elif not key.startswith("layer."):
            out[key] = value   # norm.weight / norm.bias, or an unknown key for the strict load to name
    for i in blocks:
        src, dst = f"layer.{i}.", f"blocks.{i}."
        take = {k[len(src):]: v for k, v in state.items() if k.startswith(src)}
        attn = {name: take.pop(f"attention.{name}") for name in
                [f"{p}_proj.{t}" for p in "qkvo" for t in ("weight", "bias")] if f"attention.{name}" in take}
        out[dst + "attn.qkv.weight"] = torch.cat([attn["q_proj.weight"], attn["k_proj.weight"],
                                                 attn["v_proj.weight"]])
        if "q_proj.bias" in attn or "v_proj.bias" in attn:
            k_bias = attn.get("k_proj.bias")
            if k_bias is not None and bool(k_bias.ne(0).any()):
                raise WeightsError(f"weights {source} have a non-zero key bias in layer {i} "
                                   "(attention.k_proj.bias): DINOv3's key bias is fixed at zero and timm's model "
                                   "has none, so these weights cannot be loaded without changing the model")
            zeros = torch.zeros_like(attn["q_proj.weight"][:, 0])
            out[dst + "attn.qkv.bias"] = torch.cat([attn.get("q_proj.bias", zeros), zeros,
                                                   attn.get("v_proj.bias", zeros)])
        out[dst + "attn.proj.weight"] = attn["o_proj.weight"]
        if "o_proj.bias" in attn:
            out[dst + "attn.proj.bias"] = attn["o_proj.bias"]
        gated = "mlp.gate_proj.weight" in take
        names = ({"mlp.gate_proj": "mlp.w1", "mlp.up_proj": "mlp.w2", "mlp.down_proj": "mlp.w3"} if gated else
                 {"mlp.up_proj": "mlp.fc1", "mlp.down_proj": "mlp.fc2"})
        names.update({"layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma"})
        for key, value in take.items():
            stem, _, leaf = key.rpartition(".")
            if key in names:
                out[dst + names[key]] = value
            elif stem in names:
                out[f"{dst}{names[stem]}.{leaf}"] = value
            else:
                out[dst + key] = value   # norm1/norm2 keep their names; unknown keys reach the strict load
    return out


def download_hub_snapshot(repo_id: str) -> Path:
    """A Hugging Face Hub model repo's config and safetensors, from the local cache or the network (only when the
    user asked for `hub:OWNER/NAME`), as a folder for `read_weights`."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors"]))
    except Exception as exc:
        raise WeightsError(hub_error(repo_id, exc)) from None


def hub_error(name: str, exc: Exception) -> str:
    """One line for a failed Hub download, with the fix when it is a gated repo or no network."""
    kind = type(exc).__name__
    hint = ""
    if "Gated" in kind:
        hint = " (a gated repo: accept its licence on huggingface.co, then log in with `hf auth login` or set HF_TOKEN)"
    elif name.startswith("local-dir:"):
        hint = " (a local-dir: folder needs timm's config.json beside the weights; or pass the folder with --weights)"
    elif str(exc).startswith("Unknown model"):   # timm's RuntimeError for a name it has no architecture for
        hint = (" (hub: takes a timm model with its pretraining, e.g. hub:vit_small_patch16_dinov3_qkvb.lvd1689m, "
                "a timm/ repo, or a Hugging Face repo such as hub:facebook/dinov3-vits16-pretrain-lvd1689m)")
    elif "LocalEntryNotFound" in kind or isinstance(exc, (OSError, ConnectionError)):
        hint = (" (hub weights are downloaded from the Hugging Face Hub: this needs network access, or the files "
                "already in the local Hugging Face cache; else pass a downloaded file or folder with --weights)")
    first = str(exc).splitlines()[0] if str(exc) else kind
    return f"cannot load hub weights '{name}': {first}{hint}"
