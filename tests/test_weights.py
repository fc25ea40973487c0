"""DINOv3 weights in the forms users download: Hugging Face transformers folders and Hub snapshots, safetensors,
shards, folders. The transformers layout is written here from a random timm model by an independent restatement of
transformers' conversion (split qkv, no key bias, renamed layer scale and MLP), and, where transformers is
installed, by transformers' own `DINOv3ViTModel.save_pretrained`."""
import json

import pytest
import timm
import torch
from safetensors.torch import save_file

from segdino import backbone as backbone_module
from segdino.backbone import BackboneError, BackboneSpec, build_backbone
from segdino.meta_layout import timm_to_meta
from segdino.weights import sha256_file

TINY = (("embed_dim", 64), ("depth", 2), ("num_heads", 2))


def random_timm(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(1)
    model = timm.create_model(name, pretrained=False, **kwargs)
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    return model.eval()


def timm_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's DINOv3 keys -> transformers' DINOv3ViTModel keys (what `save_pretrained` of a converted model holds)."""
    out = {"embeddings.mask_token": torch.zeros(1, 1, state["cls_token"].shape[-1])}
    mlp = {"fc1_g": "gate_proj", "fc1_x": "up_proj", "fc1": "up_proj", "fc2": "down_proj"}
    for key, value in state.items():
        if key in ("cls_token", "reg_token"):
            out[{"cls_token": "embeddings.cls_token", "reg_token": "embeddings.register_tokens"}[key]] = value
        elif key.startswith("patch_embed.proj."):
            out["embeddings.patch_embeddings." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("blocks."):
            _, i, rest = key.split(".", 2)
            layer = f"layer.{i}."
            if rest == "attn.qkv.weight":
                for name, part in zip("qkv", value.chunk(3)):
                    out[f"{layer}attention.{name}_proj.weight"] = part
            elif rest in ("attn.q_bias", "attn.v_bias"):
                out[f"{layer}attention.{rest[5]}_proj.bias"] = value
            elif rest.startswith("attn.proj."):
                out[f"{layer}attention.o_proj.{rest.rsplit('.', 1)[1]}"] = value
            elif rest in ("gamma_1", "gamma_2"):
                out[f"{layer}layer_scale{rest[-1]}.lambda1"] = value
            elif rest.startswith("mlp."):
                _, name, leaf = rest.split(".")
                out[f"{layer}mlp.{mlp[name]}.{leaf}"] = value
            else:
                out[layer + rest] = value   # norm1, norm2
        else:
            out[key] = value   # norm
    return {k: v.contiguous() for k, v in out.items()}


def taps_direct(model, bb, x):
    return model.forward_intermediates((x - bb.mean) / bb.std, indices=list(bb.layer_indices), norm=True,
                                       output_fmt="NCHW", intermediates_only=True)


@pytest.fixture
def tiny_gated(monkeypatch):
    """A tiny SwiGLU DINOv3 (the ViT-S+/H+/7B MLP) registered as backbone 'tiny_gated'."""
    monkeypatch.setitem(backbone_module.BACKBONES, "tiny_gated",
                        BackboneSpec("vit_small_plus_patch16_dinov3_qkvb", (0, 1), TINY))
    return random_timm("vit_small_plus_patch16_dinov3_qkvb", **dict(TINY))


@pytest.mark.parametrize("gated", [False, True])
def test_transformers_folder_loads_to_the_same_taps(tmp_path, gated, request):
    name = "tiny_gated" if gated else "test"
    model = request.getfixturevalue("tiny_gated") if gated else random_timm(
        "vit_small_patch16_dinov3_qkvb", **dict(backbone_module.BACKBONES["test"].kwargs))
    hf = timm_to_hf(model.state_dict())
    assert ("layer.0.mlp.gate_proj.weight" in hf) == gated and "layer.0.attention.k_proj.bias" not in hf
    folder = tmp_path / "dinov3-hf"
    folder.mkdir()
    save_file(hf, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "dinov3_vit"}))
    bb = build_backbone(name, folder)
    x = torch.rand(2, 3, 48, 64)
    for ours, theirs in zip(bb(x).taps, taps_direct(model, bb, x)):
        assert torch.equal(ours, theirs)
    assert bb.weights_sha256 == sha256_file(folder / "model.safetensors")   # the folder is its file
    assert build_backbone(name, folder / "model.safetensors").weights_sha256 == bb.weights_sha256


def test_task_model_prefix_and_shards(tmp_path):
    model = random_timm("vit_small_patch16_dinov3_qkvb", **dict(backbone_module.BACKBONES["test"].kwargs))
    hf = {f"dinov3_vit.{k}": v for k, v in timm_to_hf(model.state_dict()).items()}
    hf["classifier.weight"] = torch.zeros(2, 64)   # a task head outside the backbone is left out
    keys = sorted(hf)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for file, names in shards.items():
        save_file({k: hf[k] for k in names}, tmp_path / file)
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": {k: f for f, names in shards.items() for k in names}}))
    bb = build_backbone("test", tmp_path)
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(bb(x).taps[-1], taps_direct(model, bb, x)[-1])
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(BackboneError, match="lists files that are not there: model-00002-of-00002"):
        build_backbone("test", tmp_path)


def test_timm_safetensors_and_meta_pth_in_folders(tmp_path):
    model = random_timm("vit_small_patch16_dinov3_qkvb", **dict(backbone_module.BACKBONES["test"].kwargs))
    x = torch.rand(1, 3, 32, 32)
    (tmp_path / "timm").mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "timm" / "model.safetensors")
    (tmp_path / "meta").mkdir()
    torch.save(timm_to_meta(model.state_dict()), tmp_path / "meta" / "dinov3_test_pretrain.pth")
    for folder in ("timm", "meta"):
        bb = build_backbone("test", tmp_path / folder)
        assert torch.equal(bb(x).taps[-1], taps_direct(model, bb, x)[-1]), folder


def test_folder_errors_name_the_folder_and_the_fix(tmp_path):
    with pytest.raises(BackboneError, match=r"no weights file to choose in folder .*found none"):
        build_backbone("test", tmp_path)
    for name in ("a.pth", "b.pth"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(BackboneError, match=r"\(found a.pth, b.pth\); pass the file itself"):
        build_backbone("test", tmp_path)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(BackboneError, match="cannot read weights file .*bad.safetensors"):
        build_backbone("test", bad)


def test_nonzero_key_bias_is_refused(tmp_path):
    model = random_timm("vit_small_patch16_dinov3_qkvb", **dict(backbone_module.BACKBONES["test"].kwargs))
    hf = timm_to_hf(model.state_dict())
    hf["layer.1.attention.k_proj.bias"] = torch.full((64,), 0.1)
    save_file(hf, tmp_path / "model.safetensors")
    with pytest.raises(BackboneError, match="non-zero key bias in layer 1"):
        build_backbone("test", tmp_path)
    hf["layer.1.attention.k_proj.bias"] = torch.zeros(64)   # a zero key bias is DINOv3's own: accepted
    save_file(hf, tmp_path / "model.safetensors")
    build_backbone("test", tmp_path)


def test_wrong_size_transformers_weights_name_the_mismatch(tmp_path):
    model = random_timm("vit_small_patch16_dinov3_qkvb", **dict(backbone_module.BACKBONES["test"].kwargs))
    save_file(timm_to_hf(model.state_dict()), tmp_path / "model.safetensors")
    with pytest.raises(BackboneError, match=r"shape \(1, 1, 64\) but 'dinov3_vits16' expects \(1, 1, 384\)"):
        build_backbone("dinov3_vits16", tmp_path)


def test_hub_transformers_repo_from_the_local_cache(tmp_path, monkeypatch):
    """`hub:facebook/...` resolves through huggingface_hub's cache (offline here), not through timm."""
    import huggingface_hub.constants

    model = random_timm("vit_small_patch16_dinov3_qkvb", **dict(backbone_module.BACKBONES["test"].kwargs))
    repo = tmp_path / "hub" / "models--facebook--dinov3-test-pretrain"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file(timm_to_hf(model.state_dict()), snapshot / "model.safetensors")
    (snapshot / "config.json").write_text(json.dumps({"model_type": "dinov3_vit"}))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    bb = build_backbone("test", "hub:facebook/dinov3-test-pretrain")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(bb(x).taps[-1], taps_direct(model, bb, x)[-1])
    assert bb.weights == "hub:facebook/dinov3-test-pretrain"
    assert bb.weights_sha256 == sha256_file(snapshot / "model.safetensors")
    with pytest.raises(BackboneError, match="cannot load hub weights 'facebook/not-cached'.*needs network access"):
        build_backbone("test", "hub:facebook/not-cached")


@pytest.mark.parametrize("gated", [False, True])
def test_transformers_save_pretrained_matches_its_own_forward(tmp_path, gated, request):
    """transformers' own DINOv3ViTModel, saved with save_pretrained, gives through our backbone the hidden states
    transformers computes (final norm applied; tokens: class, 4 registers, patches)."""
    transformers = pytest.importorskip("transformers")
    name = "test"
    if gated:
        request.getfixturevalue("tiny_gated")
        name = "tiny_gated"
    depth = 2 if gated else 4
    config = transformers.DINOv3ViTConfig(
        hidden_size=64, num_hidden_layers=depth, num_attention_heads=2, intermediate_size=256,
        num_register_tokens=4, image_size=64, use_gated_mlp=gated, hidden_act="silu" if gated else "gelu")
    torch.manual_seed(2)
    hf_model = transformers.DINOv3ViTModel(config).eval()
    with torch.no_grad():
        for p in hf_model.parameters():
            p.normal_(0, 0.05)
    hf_model.save_pretrained(tmp_path / "hf")
    bb = build_backbone(name, tmp_path / "hf")
    x = torch.rand(2, 3, 48, 64)
    with torch.no_grad():
        hidden = hf_model(pixel_values=(x - bb.mean) / bb.std).last_hidden_state
        features = bb(x)
    tokens = features.taps[-1].flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens, hidden[:, 5:], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(features.prefix[:, -1], hidden[:, :5], atol=2e-5, rtol=1e-4)


def test_cli_takes_a_transformers_folder(tmp_path, kvasir_root):
    from typer.testing import CliRunner

    from benchmark.cli import app

    model = random_timm("vit_small_patch16_dinov3_qkvb", **dict(backbone_module.BACKBONES["test"].kwargs))
    folder = tmp_path / "dinov3-hf"
    folder.mkdir()
    save_file(timm_to_hf(model.state_dict()), folder / "model.safetensors")
    result = CliRunner().invoke(app, ["run", "--datasets", "kvasir", "--methods", "segdino", "--seeds", "0",
                                      "--preset", "smoke", "--backbone", "test", "--weights", str(folder),
                                      "--data-root", str(kvasir_root), "--runs-dir", str(tmp_path / "runs"),
                                      "--dry-run"])
    assert result.exit_code == 0, result.output   # a folder passes the checks made before any work
    result = CliRunner().invoke(app, ["profile", "--methods", "segdino", "--backbone", "dinov3_vits16",
                                      "--weights", str(folder), "--no-timing"])
    assert result.exit_code == 2 and "expects (1, 1, 384)" in result.output and "Traceback" not in result.output


def test_a_checkpoint_holding_python_objects_is_refused_without_torchs_advice(tmp_path):
    import argparse

    path = tmp_path / "objects.pth"
    torch.save({"cls_token": torch.zeros(1), "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(BackboneError) as err:
        build_backbone("test", path)
    assert "holds Python objects besides tensors, which segbench does not unpickle" in str(err.value)
    assert "weights_only=False" not in str(err.value)
