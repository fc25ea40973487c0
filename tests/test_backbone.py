import pytest
import torch
import timm

from segdino.backbone import BACKBONES, BackboneError, build_backbone
from segdino.meta_layout import timm_to_meta


def test_every_dinov3_size_builds_with_the_paper_taps():
    for name, spec in BACKBONES.items():
        model = timm.create_model(spec.timm_name, pretrained=False, device="meta", **dict(spec.kwargs))
        assert max(spec.taps) == len(model.blocks) - 1, name
    assert BACKBONES["dinov3_vits16"].taps == (2, 5, 8, 11)
    assert BACKBONES["dinov3_vitl16"].taps == (4, 11, 17, 23)


def test_taps_are_normed_nchw_and_match_meta_get_intermediate_layers_definition():
    bb = build_backbone("test")
    x = torch.rand(2, 3, 48, 80)
    feats = bb(x)
    assert [tuple(t.shape) for t in feats.taps] == [(2, 64, 3, 5)] * 4
    assert feats.prefix.shape == (2, 4, 5, 64)   # per tap: class + 4 registers
    # the last tap is the final-normed output of the last block, the same as forward_features' patch tokens
    tokens = bb.vit.forward_features((x - bb.mean) / bb.std)
    assert torch.allclose(feats.taps[-1].flatten(2).transpose(1, 2), tokens[:, 5:], atol=1e-5)
    assert torch.allclose(feats.prefix[:, -1], tokens[:, :5], atol=1e-5)
    assert not torch.allclose(feats.prefix[:, 0], feats.prefix[:, -1])   # each tap carries its own layer's tokens


@pytest.fixture(scope="module")
def meta_vits(tmp_path_factory):
    """A random ViT-S saved in Meta's key layout (REFERENCE.md §6), and the timm model it came from."""
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch16_dinov3_qkvb", pretrained=False)
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    state = timm_to_meta(model.state_dict())
    path = tmp_path_factory.mktemp("w") / "dinov3_vits16_pretrain_random.pth"
    torch.save(state, path)
    return path, model, state


def test_meta_layout_checkpoint_has_meta_keys(meta_vits):
    _, _, state = meta_vits
    assert len(state) == 188
    assert {"storage_tokens", "mask_token", "rope_embed.periods", "blocks.0.attn.qkv.bias",
            "blocks.0.attn.qkv.bias_mask", "blocks.0.ls1.gamma"} <= set(state)
    assert "reg_token" not in state


def test_meta_checkpoint_loads_and_taps_equal_timm_direct(meta_vits):
    path, model, _ = meta_vits
    bb = build_backbone("dinov3_vits16", path)
    x = torch.rand(1, 3, 64, 64)
    direct = model.eval().forward_intermediates((x - bb.mean) / bb.std, indices=[2, 5, 8, 11], norm=True,
                                                output_fmt="NCHW", intermediates_only=True)
    for ours, theirs in zip(bb(x).taps, direct):
        assert torch.equal(ours, theirs)
    assert bb.weights_sha256 and len(bb.weights_sha256) == 64


def test_wrong_size_weights_name_the_mismatch(meta_vits):
    path, _, _ = meta_vits
    with pytest.raises(BackboneError, match=r"dinov3_vitb16.*shape \(1, 1, 384\).*expects \(1, 1, 768\)"):
        build_backbone("dinov3_vitb16", path)


def test_missing_and_unreadable_weights(tmp_path):
    with pytest.raises(BackboneError, match="not found"):
        build_backbone("test", tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(BackboneError, match="cannot read weights file"):
        build_backbone("test", bad)


def test_unknown_backbone_lists_valid():
    with pytest.raises(BackboneError, match="valid: dinov3_vits16"):
        build_backbone("vit_giant")


def test_hub_weights_fail_clearly_offline():
    # the README's repo-id form reaches the download (timm wants an hf-hub: prefix on it), which fails offline
    # with a hint; a bad name is timm's own one-line message without the network hint
    for weights in ("hub:timm/vit_small_patch16_dinov3_qkvb.lvd1689m", "hub:vit_small_patch16_dinov3_qkvb.lvd1689m"):
        with pytest.raises(BackboneError, match="cannot load hub weights") as err:
            build_backbone("dinov3_vits16", weights)
        assert "source prefix" not in str(err.value) and "needs network access" in str(err.value)
    with pytest.raises(BackboneError, match="cannot load hub weights 'no_such_model'") as err:
        build_backbone("dinov3_vits16", "hub:no_such_model")
    assert "network" not in str(err.value) and "e.g. hub:vit_small_patch16_dinov3_qkvb.lvd1689m" in str(err.value)


def test_hub_weights_of_another_dinov3_variant_are_refused_before_download():
    """timm also lists the plain `..._dinov3` model (no q/v biases: it would load Meta's weights without them) and
    the satellite pretraining (its own mean/std): refused offline, naming the right name; other pretrainings warn."""
    right = "hub:timm/vit_small_patch16_dinov3_qkvb.lvd1689m"
    for weights in ("hub:timm/vit_small_patch16_dinov3.lvd1689m", "hub:vit_base_patch16_dinov3_qkvb.lvd1689m"):
        with pytest.raises(BackboneError, match=f"build timm's vit_.*use --weights {right}$"):
            build_backbone("dinov3_vits16", weights)
    with pytest.raises(BackboneError, match="satellite pretraining.*ImageNet's.*vit_large_patch16_dinov3_qkvb"):
        build_backbone("dinov3_vitl16", "hub:timm/vit_large_patch16_dinov3_qkvb.sat493m")
    with pytest.raises(BackboneError, match="satellite pretraining.*hub:facebook/dinov3-vitl16-pretrain-lvd1689m$"):
        build_backbone("dinov3_vitl16", "hub:facebook/dinov3-vitl16-pretrain-sat493m")   # transformers format
    with pytest.raises(BackboneError, match="not backbone dinov3_vits16's vit_small_patch16_dinov3_qkvb"):
        build_backbone("dinov3_vits16", "hub:timm/vit_small_patch16_dinov3.lvd1689m")
    with pytest.warns(UserWarning, match="not the paper's lvd1689m pretraining"):
        with pytest.raises(BackboneError, match="cannot load hub weights"):   # offline: the download fails next
            build_backbone("dinov3_vits16", "hub:timm/vit_small_patch16_dinov3_qkvb.eupe_lvd1689m")


def test_hub_model_names():
    from segdino.backbone import hub_model_name

    assert hub_model_name("timm/vit_small_patch16_dinov3_qkvb.lvd1689m") == \
        "hf-hub:timm/vit_small_patch16_dinov3_qkvb.lvd1689m"
    for name in ("vit_small_patch16_dinov3_qkvb.lvd1689m", "hf-hub:timm/x", "local-dir:/models/x"):
        assert hub_model_name(name) == name


def test_random_weights_leave_every_other_generator_alone(monkeypatch):
    """The fixed random draw seeds only the CPU generator, and restores it: seeding through torch.manual_seed
    would reset the CUDA generators too (fork_rng(devices=[]) does not restore them), giving every seed's run
    the same dropout masks on a GPU."""
    torch.manual_seed(123)
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(seed))
    before = torch.random.get_rng_state()
    a, b = build_backbone("test"), build_backbone("test")
    assert calls == []
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_rope_rescale_in_train_mode_follows_meta_and_eval_mode_is_untouched():
    """Meta builds DINOv3 with pos_embed_rope_rescale_coords=2: in train mode its RopePositionEmbedding maps the
    patch centres to [-1, 1] per axis and multiplies them by exp(U(-ln 2, ln 2)), one draw per forward. Written out
    here from that definition and compared with the backbone's own RoPE."""
    import math

    bb = build_backbone("test")
    rope = bb.vit.rope
    assert rope.rescale_coords == 2.0
    h, w = 3, 5
    eval_embed = rope.get_embed(shape=[h, w])
    rope.train()
    torch.manual_seed(3)
    train_embed = rope.get_embed(shape=[h, w])
    torch.manual_seed(3)
    scale = torch.empty(1).uniform_(-math.log(2), math.log(2)).exp()
    ys, xs = ((torch.arange(0.5, n) / n) * 2 - 1 for n in (h, w))
    coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).flatten(0, 1)
    head_dim = bb.embed_dim // bb.vit.blocks[0].attn.num_heads
    periods = 100.0 ** (2 * torch.arange(head_dim // 4) / (head_dim // 2))

    def embed(c):
        angles = (2 * math.pi * c[:, :, None] / periods).flatten(1).repeat(1, 2)
        return torch.cat([angles.sin(), angles.cos()], -1)

    assert torch.allclose(train_embed, embed(coords * scale), atol=1e-6)
    assert torch.allclose(eval_embed, embed(coords), atol=1e-6)
    assert not torch.allclose(train_embed, eval_embed)


def test_a_timm_without_rope_rescaling_is_named_with_the_fix(monkeypatch):
    import inspect

    from segdino import backbone

    real = inspect.signature

    def old_eva(fn):
        sig = real(fn)
        if fn is timm.models.eva.Eva.__init__:   # as timm < 1.0.30 has it
            return sig.replace(parameters=[p for n, p in sig.parameters.items() if n != "rope_rescale_coords"])
        return sig

    backbone.check_timm.cache_clear()
    monkeypatch.setattr(inspect, "signature", old_eva)
    try:
        with pytest.raises(BackboneError, match=r"too old .* timm >= 1\.0\.30.*pip install -U"):
            build_backbone("test")
    finally:
        backbone.check_timm.cache_clear()


def test_weights_of_a_deeper_model_are_refused_without_stray_output(capsys):
    """timm's key converter print()s every block it cannot place; those lines must not reach stdout (where
    `--json` and `--csv` output goes): the mismatch is one BackboneError."""
    import timm

    from segdino.backbone import BackboneError, build_backbone, load_backbone_weights
    from segdino.meta_layout import timm_to_meta

    deeper = timm.create_model("vit_small_patch16_dinov3_qkvb", pretrained=False, embed_dim=64, depth=6, num_heads=2)
    with pytest.raises(BackboneError, match="do not fit backbone 'test'"):
        load_backbone_weights(build_backbone("test").vit, "test", timm_to_meta(deeper.state_dict()), "deeper.pth")
    assert capsys.readouterr().out == ""


def test_timm_hub_weights_are_identified_by_their_tensors(tmp_path):
    """Weights timm reads itself (`hub:local-dir:FOLDER`, a Hub cache) are hashed as loaded: replaced in place, they
    get another weights_sha256, so the feature cache never serves the old weights' features under the same name."""
    import json

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "ld"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in build_backbone("test").vit.state_dict().items()},
              folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({
        "architecture": "vit_small_patch16_dinov3_qkvb", "num_classes": 0, "pretrained_cfg": {},
        "model_args": {"embed_dim": 64, "depth": 4, "num_heads": 2}}))
    first = build_backbone("test", f"hub:local-dir:{folder}")
    again = build_backbone("test", f"hub:local-dir:{folder}")
    assert first.weights_sha256 and len(first.weights_sha256) == 64 and again.weights_sha256 == first.weights_sha256
    state = load_file(folder / "model.safetensors")
    save_file({k: v + 0.5 if v.is_floating_point() else v for k, v in state.items()}, folder / "model.safetensors")
    assert build_backbone("test", f"hub:local-dir:{folder}").weights_sha256 != first.weights_sha256


def test_taps_are_the_tapped_blocks_outputs_in_order():
    """Each tap is its block's output through the final norm, in the order of the spec's indices. The random test
    backbone's LayerScale (1e-5) makes its blocks near identity and its taps near equal, so it is raised here:
    a swapped or shifted tap would otherwise pass unseen."""
    bb = build_backbone("test")
    with torch.no_grad():
        for block in bb.vit.blocks:   # timm's EvaBlock holds LayerScale as gamma_1 / gamma_2
            block.gamma_1.fill_(1.0), block.gamma_2.fill_(1.0)
    outputs = {}
    hooks = [block.register_forward_hook(lambda m, i, o, k=k: outputs.__setitem__(k, o))
             for k, block in enumerate(bb.vit.blocks)]
    x = torch.rand(1, 3, 48, 80)
    with torch.no_grad():
        feats = bb(x)
    for h in hooks:
        h.remove()
    prefix = bb.num_prefix_tokens
    for tap, index in zip(feats.taps, bb.layer_indices):
        tokens = bb.vit.norm(outputs[index])[:, prefix:]
        assert torch.allclose(tap.flatten(2).transpose(1, 2), tokens, atol=1e-5), index
    for a, b in zip(feats.taps, feats.taps[1:]):   # distinct, so the order is tested
        assert (a - b).abs().max() > 1e-2
