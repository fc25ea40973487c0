"""Every registered decoder on the tiny random backbone: shapes, gradients, freezing, parameter counts.

The checks are parametrised over the DECODERS registry, so registering a decoder is enough to cover it; the lines
per decoder below state only what that decoder promises (its output stride). Parameter budgets on ViT-S/B are
counted on the meta device (no weights are materialised).
"""
import pytest
import torch

from baselines.budget import segdino_budget
from baselines.dpt import DPTHead
from baselines.pyramid import TapPyramid, pyramid_channels
from benchmark.profiling import build_segmenter
from benchmark.registry import DECODERS, build_decoder
from segdino.backbone import Features, build_backbone
from segdino.model import Segmenter, count_parameters

OUTPUT_STRIDE = {"segdino": 16, "unet": 1, "upernet": 1, "dpt": 1, "unet-small": 1, "upernet-small": 1,
                 "dpt-small": 1}
SMALL = [k for k in DECODERS if k.endswith("-small")]
SIZE = (64, 96)  # non-square: 4 x 6 taps
NUM_CLASSES = 2


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return build_backbone("test")


def make_model(key: str, backbone) -> Segmenter:
    torch.manual_seed(0)
    return Segmenter(backbone, build_decoder(key, backbone.embed_dim, NUM_CLASSES))


def test_registry_holds_every_baseline():
    assert {"segdino", "unet", "upernet", "dpt", "unet-small", "upernet-small", "dpt-small"} <= set(DECODERS)
    assert set(DECODERS) == set(OUTPUT_STRIDE), "state the output stride of a new decoder in OUTPUT_STRIDE"


@pytest.mark.parametrize("key", list(DECODERS))
@pytest.mark.parametrize("size", [SIZE, (80, 48)], ids=["64x96", "80x48-odd-grid"])
def test_logits_shape_stride_and_finite(key, size, backbone):
    model = make_model(key, backbone).eval()
    images = torch.rand(2, 3, *size)
    with torch.no_grad():
        features = model.features(images)
        raw = model.decoder(features)
        logits = model.decode(features, size)
    stride = model.decoder.output_stride
    assert stride == OUTPUT_STRIDE[key]
    assert tuple(raw.shape) == (2, NUM_CLASSES, size[0] // stride, size[1] // stride)
    assert tuple(logits.shape) == (2, NUM_CLASSES, *size)
    assert isinstance(model.decoder.upsample_align_corners, bool)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("key", list(DECODERS))
def test_gradients_reach_every_decoder_parameter_and_no_backbone_parameter(key, backbone):
    model = make_model(key, backbone)
    model.train()
    assert model.decoder.training and not model.backbone.training
    assert all(not m.training for m in model.backbone.modules())
    model(torch.rand(2, 3, *SIZE)).square().mean().backward()
    missing = [n for n, p in model.decoder.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing[:5]}"
    assert all(p.grad is None and not p.requires_grad for p in model.backbone.parameters())


@pytest.mark.parametrize("key", list(DECODERS))
def test_trainable_count_is_the_decoder(key, backbone):
    model = make_model(key, backbone)
    counts = count_parameters(model)
    assert counts["trainable_params"] == sum(p.numel() for p in model.decoder.parameters())
    assert counts["frozen_params"] == sum(p.numel() for p in backbone.parameters())
    assert {id(p) for p in model.trainable_parameters()} == {id(p) for p in model.decoder.parameters()}


@pytest.mark.parametrize("backbone_name, expected", [("dinov3_vits16", 2_213_793), ("dinov3_vitb16", 2_766_753)])
def test_segdino_trainable_parameters_exact(backbone_name, expected):
    # REFERENCE.md §1: 554,400 (1x1 projections) + 1,658,880 (3x3 convs) + 513 (classifier) for ViT-S, one class
    counts = count_parameters(build_segmenter("segdino", backbone_name, num_classes=1, device="meta"))
    assert counts["trainable_params"] == expected
    assert segdino_budget(384 if backbone_name == "dinov3_vits16" else 768, 1) == expected


@pytest.mark.parametrize("key", SMALL)
@pytest.mark.parametrize("in_channels, budget", [(384, 2_213_793), (768, 2_766_753)], ids=["vits16", "vitb16"])
def test_small_variants_within_15_percent_of_segdino(key, in_channels, budget):
    with torch.device("meta"):
        decoder = build_decoder(key, in_channels, 1)
    n = sum(p.numel() for p in decoder.parameters())
    assert abs(n - budget) <= 0.15 * budget, f"{key}: {n:,} vs SegDINO {budget:,} ({decoder.config})"


def test_pyramid_strides_channels_and_no_parameters():
    taps = [torch.rand(2, 8, 5, 7) for _ in range(4)]  # an odd 5 x 7 grid = an 80 x 112 input
    levels = TapPyramid()(taps)
    assert [tuple(t.shape) for t in levels] == [
        (2, 0, 80, 112), (2, 0, 40, 56), (2, 8, 20, 28), (2, 8, 10, 14), (2, 8, 5, 7), (2, 8, 3, 4)]
    assert [t.shape[1] for t in levels] == pyramid_channels(8)
    assert levels[4] is taps[2] and not list(TapPyramid().parameters())


def test_dpt_forward_is_smp_forward_on_even_grids():
    torch.manual_seed(0)
    head = DPTHead(16, 1, intermediate_channels=(8, 8, 16, 16), fusion_channels=8).eval()
    feats = Features([torch.rand(1, 16, 4, 6) for _ in range(4)], torch.rand(1, 4, 5, 16))
    with torch.no_grad():
        expected = head.head(head.decoder(feats.taps, [feats.prefix[:, i, :1] for i in range(4)]))
        assert torch.equal(head(feats), expected)
