"""Parameter and FLOP counting (by hand on one conv and one linear layer, and ViT-S/16 against the analytic
count), meta-device counting, and the fields of profile rows. Timings are only checked to exist: benchmarks are
scripts (scripts/bench_profile.py), not timed tests."""
import json

import pytest
import torch
from torch import nn

from benchmark import profiling as P
from segdino.backbone import Features
from segdino.model import Segmenter


class PatchConv(nn.Module):
    """A one-conv 'backbone': 16x16 patches, stride 16, 3 -> 8 channels, the same map as all four taps."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 8, kernel_size=16, stride=16)

    def forward(self, images):
        x = self.proj(images)
        return Features([x] * 4, x.new_zeros(x.shape[0], 4, 5, 8))


class LinearHead(nn.Module):
    """A one-linear 'decoder': 8 -> 2 per position of the last tap."""

    output_stride = 16
    upsample_align_corners = False

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, features):
        return self.fc(features.taps[-1].permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_flop_counter_by_hand_on_one_conv_and_one_linear():
    model = Segmenter(PatchConv(), LinearHead())
    flops = P.count_flops(model, 32)
    # conv: a 32x32 image -> 2x2 = 4 output positions x 8 output channels, each a dot product over 3*16*16 = 768
    # inputs: 4 * 8 * 768 = 24,576 MACs = 49,152 FLOPs (bias adds are not counted)
    assert flops["backbone_gflops"] * 1e9 == pytest.approx(49_152)
    # linear: 4 positions x 2 outputs x 8 inputs = 64 MACs = 128 FLOPs; the x16 bilinear upsampling counts 0
    assert flops["decoder_gflops"] * 1e9 == pytest.approx(128)
    assert flops["total_gmacs"] * 1e9 == pytest.approx((49_152 + 128) / 2)
    assert flops["tool"] == P.FLOP_TOOL


def test_meta_device_counts_equal_real_counts():
    real = P.count_flops(P.build_segmenter("segdino", "test", 1, "cpu"), (64, 96))
    meta = P.count_method_flops("segdino", "test", (64, 96), 1)
    assert meta["backbone_gflops"] == pytest.approx(real["backbone_gflops"], rel=1e-12)
    assert meta["decoder_gflops"] == pytest.approx(real["decoder_gflops"], rel=1e-12)
    assert meta["backbone_gflops"] > 0 and meta["trainable_params"] > 0


def test_vits16_backbone_flops_at_448_match_the_analytic_count():
    # REFERENCE.md §6: 789 tokens; linear 16.75 + attention 5.74 + patch embed 0.23 GMAC = 22.72 GMAC = 45.44 GFLOP.
    # Counted on the meta device: no weights are materialised, no GPU needed, attention included.
    counts = P.count_method_flops("segdino", "dinov3_vits16", 448, 1)
    assert counts["backbone_gflops"] == pytest.approx(45.44, rel=0.01)
    assert counts["backbone_gmacs"] == pytest.approx(22.72, rel=0.01)
    assert counts["trainable_params"] == 2_213_793


EXPECTED_FIELDS = {
    "method", "backbone", "weights", "size", "height", "width", "device", "device_name", "dtype", "autocast",
    "compile", "trainable_params", "frozen_params", "backbone_gflops", "decoder_gflops", "total_gflops",
    "backbone_gmacs", "decoder_gmacs", "total_gmacs", "flop_tool", "flop_convention", "batch1_ms",
    "batch1_ms_mean", "throughput_img_s", "throughput_img_s_mean", "throughput_batch", "peak_mem_mb", "peak_mem_note",
    "error", "warmup",
    "iters", "num_threads", "cpu_count", "load_avg_1min_before", "load_avg_1min_after", "torch", "timm", "smp",
    "python",
}


def test_profile_rows_have_the_expected_fields(tmp_path):
    rows = P.profile_methods(["segdino", "unet-small"], "test", (32, 48), "cpu", batch=2, warmup=0, iters=1)
    assert [r["method"] for r in rows] == ["segdino", "unet-small"]
    for row in rows:
        assert EXPECTED_FIELDS <= set(row)
        assert row["error"] is None and row["device"] == "cpu" and row["size"] == "32x48"
        assert (row["dtype"], row["compile"], row["throughput_batch"]) == ("float32", "none", 2)
        assert row["batch1_ms"] > 0 and row["throughput_img_s"] > 0
        assert row["peak_mem_mb"] is None and row["peak_mem_note"]  # CPU: null, with the reason
        assert row["total_gflops"] == pytest.approx(row["backbone_gflops"] + row["decoder_gflops"])
        assert row["torch"] == torch.__version__
    csv_path, json_path = P.save_profile(rows, tmp_path, "profile_cpu")
    saved = json.loads(json_path.read_text())
    assert saved["device"] == "cpu" and len(saved["rows"]) == 2
    assert csv_path.read_text().splitlines()[0].startswith("method,")
    assert "unet-small" in P.format_table(rows)


def test_unknown_variant_is_refused_before_any_work():
    with pytest.raises(ValueError, match="unknown variant"):
        P.profile_methods(["segdino"], "test", 32, "cpu", variants=[("float32", "fastest")])


@pytest.mark.gpu
def test_accelerator_variants():
    if not torch.accelerator.is_available():
        pytest.skip("no accelerator")
    device = torch.accelerator.current_accelerator()
    rows = P.profile_methods(["segdino"], "test", 64, device, batch=4, warmup=2, iters=3,
                             variants=[("float32", "none"), ("bfloat16", "none"), ("bfloat16", "default")])
    assert all(r["error"] is None and r["peak_mem_mb"] > 0 for r in rows)


def test_peak_memory_is_reset_after_warm_up_and_rows_are_handed_over_as_they_finish(monkeypatch):
    calls, resets = [], []

    class Fake:   # stands in for torch.cuda: the reset must come after the warm-up calls, before the timed ones
        @staticmethod
        def reset_peak_memory_stats(device):
            resets.append(len(calls))

    monkeypatch.setattr(P.torch, "get_device_module", lambda device: Fake)
    times = P._timed_calls(lambda x: calls.append(1), torch.zeros(1), warmup=3, iters=2, amp=P.nullcontext,
                           reset_peak=True)
    assert resets == [3] and len(times) == 2
    monkeypatch.undo()
    seen = []
    P.profile_methods(["segdino", "unet-small"], "test", 32, "cpu", batch=2, warmup=0, iters=1,
                      on_row=lambda rows: seen.append([r["method"] for r in rows]))
    assert seen == [["segdino"], ["segdino", "unet-small"]]
