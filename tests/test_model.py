import torch

from benchmark.config import load_config
from benchmark.registry import build_model
from segdino.backbone import build_backbone
from segdino.head import SegDINOHead
from segdino.model import Segmenter, count_parameters


def test_segdino_head_parameter_count_matches_paper():
    """REFERENCE.md §1: 554,400 + 1,658,880 + 513 = 2,213,793 for ViT-S (384); 2,766,753 for ViT-B (768)."""
    assert sum(p.numel() for p in SegDINOHead(384, 1).parameters()) == 2_213_793
    assert sum(p.numel() for p in SegDINOHead(768, 1).parameters()) == 2_766_753
    head = SegDINOHead(384, 1)
    assert sum(p.numel() for p in head.projects.parameters()) == 554_400
    assert head.scratch.layer1_rn.bias is None


def test_paper_model_counts_trainable_and_frozen_separately():
    cfg = load_config("paper", overrides={"backbone.name": "dinov3_vits16"})
    counts = count_parameters(build_model(cfg))
    assert counts == {"trainable_params": 2_213_793, "frozen_params": 21_596_160}


def test_training_step_leaves_backbone_frozen_and_in_eval():
    bb = build_backbone("test")
    model = Segmenter(bb, SegDINOHead(bb.embed_dim, 1))
    model.train()
    assert not model.backbone.training and model.decoder.training
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in model.decoder.parameters()}
    before = [p.clone() for p in model.backbone.parameters()]
    logits = model(torch.rand(2, 3, 32, 48))
    assert logits.shape == (2, 1, 32, 48)
    logits.mean().backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))


def test_unfrozen_backbone_trains_for_public_code_preset():
    bb = build_backbone("test")
    model = Segmenter(bb, SegDINOHead(bb.embed_dim, 1), freeze_backbone=False)
    model.train()
    assert model.backbone.training
    model(torch.rand(1, 3, 32, 32)).mean().backward()
    assert model.backbone.vit.patch_embed.proj.weight.grad is not None


def test_only_a_trained_backbone_sees_the_random_rope_rescale():
    """The public-code preset trains the backbone in train mode, where Meta's RoPE rescales coordinates at random;
    a frozen backbone stays in eval mode and gives the same features every time."""
    def backbone():   # layer scale at 1 instead of its 1e-5 init, so attention (and RoPE) shapes the taps
        bb = build_backbone("test")
        for name, p in bb.named_parameters():
            if name.endswith((".gamma_1", ".gamma_2")):
                p.data.fill_(1.0)
        return bb

    x = torch.rand(1, 3, 32, 48)
    frozen = Segmenter(backbone(), SegDINOHead(64, 1)).train()
    assert torch.equal(frozen.features(x).taps[-1], frozen.features(x).taps[-1])
    trained = Segmenter(backbone(), SegDINOHead(64, 1), freeze_backbone=False).train()
    assert trained.backbone.training
    assert not torch.allclose(trained.features(x).taps[-1], trained.features(x).taps[-1])
    trained.eval()
    assert torch.equal(trained.features(x).taps[-1], frozen.features(x).taps[-1])
