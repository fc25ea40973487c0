"""reports.tables: layout, rounding, best-in-bold direction, missing cells, reported rows, Δ row, golden output.

Regenerate the golden files after an intended change with SEGBENCH_UPDATE_GOLDEN=1 and review the diff.
"""

import json
import math
import os
from pathlib import Path

import pytest

from reports import paper
from reports import tables as T
from reports.load import load_runs, read_speed
from tests.reports_fixtures import write_exact_run, write_fake_runs

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    fake = write_fake_runs(tmp_path_factory.mktemp("runs"))
    return T.Context.from_runs(load_runs(fake.root), "dinov3_vits16", "paper")


@pytest.fixture(scope="module")
def built(ctx):
    return {t.key: t for t in T.build_tables(ctx)}


def _cells(table, row_label):
    for section in table.sections:
        for label, cells in section.rows:
            if label == row_label:
                return cells
    raise KeyError(row_label)


@pytest.mark.parametrize("key, name", [("segdino", "SegDINO"), ("unet", "UNet"), ("upernet", "UPerNet"),
                                       ("dpt", "DPT"), ("unet-small", "UNet (small)"), ("dpt-small", "DPT (small)"),
                                       ("mynet", "mynet"), ("mynet-small", "mynet-small")])
def test_method_names(key, name):
    assert T.display_method(key) == name


@pytest.mark.parametrize("key, name", [("tn3k", "TN3K"), ("kvasir", "Kvasir-SEG"), ("isic2017", "ISIC 2017"),
                                       ("msd", "MSD"), ("vmd", "VMD-D"), ("visha", "ViSha"), ("folder", "folder"),
                                       ("folder/mydata", "folder (mydata)")])
def test_dataset_names(key, name):
    assert T.display_dataset(key) == name


def test_builds_the_paper_tables_efficiency_and_one_table_per_dataset(built):
    assert {"table1_medical", "table2_msd", "table3_vmd", "table4_visha", "efficiency"} <= set(built)
    expected = {"tn3k": ["segdino", "medical-native"], "kvasir": ["segdino", "medical-native"],
                "isic2017": ["segdino", "medical-native"], "msd": ["mirror"], "vmd": ["mirror"], "visha": ["shadow"],
                "folder-mydata": ["segdino"]}
    assert {f"dataset_{d}__{p}" for d, ps in expected.items() for p in ps} <= set(built)
    keys = list(built)
    assert keys.index("dataset_tn3k__segdino") < keys.index("dataset_tn3k__medical-native")


def test_table1_layout_and_caption(built):
    t = built["table1_medical"]
    assert [g[0] for g in t.groups] == ["TN3K", "Kvasir-SEG", "ISIC 2017"]
    assert [c.metric for c in t.columns] == ["dice", "iou", "hd95"] * 3
    assert [label for label, _ in t.sections[1].rows] == list(paper.TABLE1.rows)
    for text in ("ddof = 1", "n = 3 seeds", "`segdino`", "pixels", "Bold", "↓ lower is better", "trained from"):
        assert text in t.caption
    assert "HD95 in pixels of the 256 grid" in t.caption  # a verified table's note is printed too


def test_captions_say_what_each_dataset_held_out_for_selection(built, tmp_path):
    """The paper's code trains on every training image; ours hold a validation split out (split.json's rule): TN3K a
    fold of its fold file (a fifth), ISIC 2017 its own validation split, the others a tenth per seed."""
    assert ("validation: TN3K: 20% of the training images, one fold of its fold file (seed mod 5); Kvasir-SEG: 10% of "
            "the training images, held out per seed; ISIC 2017: its official validation split.") in \
        built["table1_medical"].caption
    assert "validation: MSD: 10% of the training images" in built["table2_msd"].caption
    # a share of the test split where any predicted pixel scores IoU 0 (the VMD-D eval script skips such frames)
    table3 = next(t for key, t in built.items() if key.startswith("table3"))
    assert "Test images with an empty ground truth: VMD-D: 1204 of 7152." in table3.caption
    assert "empty ground truth" not in built["table2_msd"].caption   # none there
    # video datasets hold whole videos out (benchmark.data.splits.carve_validation), not a share of frames
    assert "validation: VMD-D: 10% of the training frames, as whole videos held out per seed" in \
        next(t for key, t in built.items() if key.startswith("table3")).caption
    assert "the paper's code trains on every training image and selects on the test split" in \
        built["table2_msd"].caption
    write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.8}})   # no split.json: nothing said
    tables = {t.key: t for t in T.build_tables(T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper"))}
    assert "validation:" not in tables["table2_msd"].caption


def test_captions_say_what_an_image_with_both_masks_empty_scores(tmp_path):
    """The mirror profile scores IoU 0 where there is no mirror and none is predicted (its empty_rule), the medical
    profile 1: a caption names the rule and how many such images there were."""
    for seed in (0, 1):
        run = write_exact_run(tmp_path, "msd", "segdino", seed, {"mirror": {"iou": 0.8}},
                              counts={"n_images": 10, "both_empty": 1 + seed})
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["profiles"]["mirror"]["convention"]["empty_rule"] = "zero"
        (run / "metrics.json").write_text(json.dumps(metrics))
    tables = {t.key: t for t in T.build_tables(T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper"))}
    assert ("IoU: an image whose ground truth and prediction are both empty scores 0 (the profile's empty_rule): 3 "
            "such scores in all, summed over 2 runs.") in tables["table2_msd"].caption


def test_table4_has_a_second_delta_row_for_per_frame_ber(built, tmp_path):
    """ViSha's BER is accumulated over the set in Table 4 (REFERENCE.md §5) but averaged per frame by the ViSha/TVSD
    code: a second Δ row gives BER, S-BER and N-BER under `shadow-per-frame`, and only those."""
    assert len(built["table4_visha"].sections[2].rows) == 1   # runs without the per-frame profile: one Δ row
    base = {"iou": 0.70, "max_fbeta": 0.80, "mae": 0.02}
    write_exact_run(tmp_path, "visha", "segdino", 0,
                    {"shadow": {**base, "ber": 9.0, "s_ber": 15.0, "n_ber": 1.0},
                     "shadow-per-frame": {**base, "ber": 11.0, "s_ber": 20.0, "n_ber": 2.0}})
    t = {t.key: t for t in T.build_tables(T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16",
                                                               "paper"))}["table4_visha"]
    assert [label for label, _ in t.sections[2].rows] == ["Δ SegDINO (ours − reported)",
                                                         "Δ SegDINO, shadow-per-frame"]
    main, alt = (_cells(t, label) for label, _ in t.sections[2].rows)
    assert [c.mean for c in main[3:]] == pytest.approx([9.0 - 8.05, 15.0 - 14.90, 1.0 - 0.82])
    assert [c.mean for c in alt[3:]] == pytest.approx([11.0 - 8.05, 20.0 - 14.90, 2.0 - 0.82])
    assert all(math.isnan(c.mean) for c in alt[:3]) and [T.cell_plain(c) for c in alt[:3]] == ["--"] * 3
    assert "Second Δ row: BER, S-BER, N-BER under profile `shadow-per-frame`" in t.caption


def test_table4_caption_points_to_the_per_frame_ber(built):
    # TVSD's evaluation averages BER per frame; Table 4 is scored accumulated (REFERENCE.md §5) and says so
    assert "accumulated" in built["table4_visha"].caption and "shadow-per-frame" in built["table4_visha"].caption


def test_table1_latex_rules(built):
    t = built["table1_medical"]
    tex = T.to_latex(t)
    assert tex.count("\\cmidrule") == 3 and "\\toprule" in tex and "\\bottomrule" in tex


def test_missing_cells_are_dashes_never_zero(built):
    t = built["table1_medical"]
    small = _cells(t, "UNet (small)")
    assert [T.cell_plain(c) for c in small[3:]] == ["--"] * 6
    md = T.to_markdown(t)
    assert "| 0 |" not in md and " 0.0000 |" not in md
    assert "DPT" not in [label for label, _ in built["table4_visha"].sections[0].rows]


def test_best_is_bold_in_the_right_direction(built):
    t = built["table1_medical"]
    ours = t.sections[0].rows
    for j, column in enumerate(t.columns):
        values = [(cells[j].mean, cells[j].bold) for _, cells in ours if not cells[j].missing]
        best = (min if column.lower_better else max)(v for v, _ in values)
        if column.metric == "hd95":   # the fixture's methods drop different numbers of infinite-HD95 images
            assert not any(b for _, b in values), column
            continue
        assert [b for v, b in values] == [round(v, 4) == round(best, 4) for v, _ in values], column
    assert not any(c.bold for _, cells in t.sections[1].rows for c in cells)  # reported rows never bold
    assert "No bold for HD95 where the rows left out different numbers of images" in t.caption


def test_no_bold_for_an_hd95_mean_over_fewer_images(tmp_path):
    """The drop rule leaves an empty prediction's image out of the HD95 mean: a model that predicts nothing on the
    hard images gets a low HD95 from the easy ones. Its HD95 is not bolded over a model scored on every image."""
    for seed in (0, 1):
        write_exact_run(tmp_path, "kvasir", "segdino", seed, {"segdino": {"dice": 0.03, "hd95": 25.8}},
                        counts={"n_images": 9, "hd95_inf": 7})
        write_exact_run(tmp_path, "kvasir", "unet", seed, {"segdino": {"dice": 0.25, "hd95": 31.2}},
                        counts={"n_images": 9, "hd95_inf": 0})
    ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper")
    t = T.paper_table(ctx, paper.TABLE1)
    j = next(j for j, c in enumerate(t.columns) if c.metric == "hd95")
    assert not any(cells[j].bold for _, cells in t.sections[0].rows)
    assert "left out per run: Kvasir-SEG: SegDINO 7, UNet 0." in t.caption
    dice = next(j for j, c in enumerate(t.columns) if c.metric == "dice")
    assert [cells[dice].bold for _, cells in t.sections[0].rows] == [False, True]   # other columns as before


def test_ties_at_displayed_precision_are_all_bold(tmp_path):
    for method, iou in (("segdino", 0.91234), ("unet", 0.91236), ("dpt", 0.5)):
        write_exact_run(tmp_path, "msd", method, 0, {"mirror": {"iou": iou}})
    ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper")
    t = T.paper_table(ctx, paper.TABLE2)
    assert [cells[0].bold for _, cells in t.sections[0].rows] == [True, True, False]


def test_delta_row_is_ours_minus_reported(built, ctx):
    t = built["table2_msd"]
    label, cells = t.sections[2].rows[0]
    assert "ours − reported" in label
    ours = ctx.stat("msd", "segdino", "mirror", "iou", 3).mean
    assert cells[0].mean == pytest.approx(ours - 0.942)
    assert T.cell_plain(cells[0]).startswith("-")


def test_vmd_rows_are_marked_unverified_and_segdino_missing(built):
    t = built["table3_vmd"]
    reported = t.sections[1]
    assert reported.note == "unverified" and "unverified" in reported.title
    labels = [label for label, _ in reported.rows]
    assert all(label.endswith("‡") for label in labels[:-1]) and labels[-1] == "SegDINO (row missing)"
    assert all(c.missing for c in reported.rows[-1][1])
    assert [T.cell_plain(c) for c in t.sections[2].rows[0][1]] == ["--"] * 4
    assert "unverified" in T.to_frame(t)["note"].tolist()
    assert "0.675" in t.caption


def test_single_seed_dataset_says_so_and_shows_no_std(built):
    t = built["table2_msd"]
    assert "one seed" in t.caption
    assert all("±" not in T.cell_plain(c) for _, cells in t.sections[0].rows for c in cells)


def test_a_row_over_fewer_seeds_is_marked(built):
    labels = [label for label, _ in built["dataset_kvasir__segdino"].sections[0].rows]
    assert "UNet (n=2)" in labels
    t1 = built["table1_medical"]  # mixed counts within a row: marked per cell
    kvasir_dice = _cells(t1, "UNet")[3]
    assert kvasir_dice.mark == "n=2" and "(n=2)" in T.cell_plain(kvasir_dice)
    assert "(n=2)" in T.std_tex(kvasir_dice)


def test_efficiency_table(built):
    t = built["efficiency"]
    segdino = dict(zip([c.metric for c in t.columns], _cells(t, "SegDINO")))
    assert T.cell_plain(segdino["trainable_params"]) == "2.21"
    assert segdino["trainable_params"].bold
    reported = t.sections[1].rows[0][1]
    assert T.cell_plain(reported[5]) == "53†" and T.cell_plain(reported[2]) == "--"
    assert "FLOPs = 2 × MACs" in t.caption and "FlopCounterMode" in t.caption
    upernet = dict(zip([c.metric for c in t.columns], _cells(t, "UPerNet")))
    assert T.cell_plain(upernet["batch1_ms"]) == "--"


def test_efficiency_latency_from_a_speed_table(ctx, tmp_path):
    rows = ["method,backbone,size,device,device_name,dtype,compile,batch1_ms,throughput_img_s,throughput_batch,error"]
    for method, ms in (("segdino", 0.8), ("unet", 1.5), ("upernet", 2.5), ("dpt", 2.0)):
        rows.append(f"{method},dinov3_vits16,256x256,cuda,NVIDIA H200,bfloat16,max-autotune,{ms},{20000 / ms},256,")
        rows.append(f"{method},dinov3_vits16,256x256,cuda,NVIDIA H200,float32,none,{ms * 3},{6000 / ms},256,")
    rows.append("segdino,dinov3_vits16,256x256,cuda,NVIDIA H200,float16,max-autotune,,,256,RuntimeError: no")
    (tmp_path / "speed.csv").write_text("\n".join(rows) + "\n")
    speed = read_speed(tmp_path / "speed.csv")
    assert len(speed) == 8
    with_speed = T.Context(ctx.backbone, ctx.preset, ctx.summary, ctx.conventions, ctx.counts, ctx.wide, speed)
    t = T.efficiency_table(with_speed)
    cells = dict(zip([c.metric for c in t.columns], _cells(t, "SegDINO")))
    assert T.cell_plain(cells["batch1_ms"]) == "0.80" and T.cell_plain(cells["fps"]) == "1250.0"
    assert "bfloat16" in t.caption and "segbench profile" in t.caption
    assert T.cell_plain(dict(zip([c.metric for c in t.columns], _cells(t, "UNet (small)")))["batch1_ms"]) == "--"


def test_a_speed_table_without_the_needed_columns_is_a_clear_error(tmp_path):
    (tmp_path / "speed.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_speed(tmp_path / "speed.csv")


def test_user_dataset_gets_a_generic_table_with_the_metrics_present(built):
    t = built["dataset_folder-mydata__segdino"]
    assert [c.metric for c in t.columns] == ["dice", "iou", "precision", "recall", "count.n_images"]


def test_latex_escapes_user_text(tmp_path):
    write_exact_run(tmp_path, "my_data&50%", "my_net", 0, {"custom": {"dice": 0.5, "weird_metric": 1.0}})
    write_exact_run(tmp_path, "my_data&50%", "my_net", 1, {"custom": {"dice": 0.7, "weird_metric": 2.0}})
    ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper")
    tex = T.to_latex(T.dataset_tables(ctx, "my_data&50%")[0])
    assert "my\\_data\\&50\\%" in tex and "my\\_net" in tex and "weird\\_metric" in tex
    assert "0.6000" in tex


def test_an_infinite_mean_renders_as_infinity(tmp_path):
    write_exact_run(tmp_path, "kvasir", "segdino", 0, {"segdino": {"dice": 0.8, "hd95": float("inf")}})
    write_exact_run(tmp_path, "kvasir", "segdino", 1, {"segdino": {"dice": 0.9, "hd95": 20.0}})
    write_exact_run(tmp_path, "kvasir", "unet", 0, {"segdino": {"dice": 0.7, "hd95": 30.0}})
    ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper")
    t = T.paper_table(ctx, paper.TABLE1)
    hd95 = _cells(t, "SegDINO")[2]
    assert T.cell_plain(hd95) == "inf" and "$\\infty$" in T.cell_tex(hd95)
    assert _cells(t, "UNet (n=1)")[2].bold  # the finite one is best on a lower-is-better column


def test_rounding_never_prints_negative_zero():
    assert T._fmt(-0.00001, 3) == "0.000"
    assert T._fmt(-0.00001, 3, signed=True) == "0.000"
    assert T._fmt(math.nan, 3) == "--"
    assert T._fmt(math.inf, 2) == "inf"


def test_csv_form_keeps_unrounded_numbers(built, ctx):
    frame = T.to_frame(built["table1_medical"])
    row = frame[(frame.row == "SegDINO") & (frame.section == "ours") & (frame.dataset == "tn3k")
                & (frame.metric == "dice")].iloc[0]
    assert row["mean"] == ctx.stat("tn3k", "segdino", "segdino", "dice", 4).mean
    assert row["n"] == 3 and row["text"].startswith("0.8")


def _golden_runs(root):
    values = {
        "segdino": [(0.93, 0.980, 0.960, 0.0160), (0.94, 0.985, 0.970, 0.0150), (0.95, 0.990, 0.980, 0.0140)],
        "unet": [(0.90, 0.970, 0.950, 0.0200), (0.91, 0.975, 0.950, 0.0210), (0.92, 0.980, 0.950, 0.0220)],
        "dpt": [(0.94, 0.990, 0.975, 0.0150), (0.95, 0.990, 0.985, 0.0130)],
    }
    for method, seeds in values.items():
        for seed, (iou, acc, fb, mae) in enumerate(seeds):
            write_exact_run(root, "msd", method, seed,
                            {"mirror": {"iou": iou, "acc": acc, "max_fbeta": fb, "mae": mae, "ber": 5.0 + seed}})


@pytest.mark.parametrize("ext, render", [("tex", T.to_latex), ("md", T.to_markdown)])
def test_golden_msd_table(tmp_path, ext, render):
    _golden_runs(tmp_path)
    ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper")
    text = render(T.paper_table(ctx, paper.TABLE2))
    golden = GOLDEN / f"table2_msd.{ext}"
    if os.environ.get("SEGBENCH_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_write_table_writes_three_formats(built, tmp_path):
    paths = T.write_table(built["table2_msd"], tmp_path)
    assert [p.name for p in paths] == ["table2_msd.tex", "table2_msd.md", "table2_msd.csv"]
    assert all(p.stat().st_size > 100 for p in paths)


def test_a_profile_that_gained_a_metric_is_not_a_different_convention(tmp_path):
    # runs scored before and after a metric joined a profile share every rule; a changed rule is still flagged
    old = write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.5}})
    new = write_exact_run(tmp_path, "msd", "segdino", 1, {"mirror": {"iou": 0.6}})
    for run, metrics, threshold in ((old, ["iou"], 0.5), (new, ["iou", "acc_mirror"], 0.5)):
        record = json.loads((run / "metrics.json").read_text())
        record["profiles"]["mirror"]["convention"].update(metrics=metrics, threshold=threshold)
        (run / "metrics.json").write_text(json.dumps(record))
    ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper")
    assert "WARNING" not in ctx.convention_note(["msd"], "mirror")
    record = json.loads((new / "metrics.json").read_text())
    record["profiles"]["mirror"]["convention"]["threshold"] = 0.4
    (new / "metrics.json").write_text(json.dumps(record))
    ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper")
    assert "WARNING: runs record 2 different conventions" in ctx.convention_note(["msd"], "mirror")


def test_the_paper_recipe_copy_is_the_paper_preset():
    # reports imports no benchmark code, so it keeps a copy of the `paper` preset's settings: the two must agree
    from benchmark.config import flatten, load_config
    from reports.load import METHOD_SETTINGS, SHARED_SETTINGS

    settings = flatten(load_config("paper").to_dict())
    assert set(SHARED_SETTINGS) <= set(settings)   # every exclusion names a real setting
    assert set(paper.NOT_RECIPE) <= set(settings)
    assert paper.RECIPE == {k: v for k, v in settings.items()
                            if k not in (*SHARED_SETTINGS, *METHOD_SETTINGS) and k not in paper.NOT_RECIPE}


def _msd_caption(tmp_path, settings=None, keep_config=True):
    run = write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.9}}, settings=settings)
    if not keep_config:
        (run / "config.yaml").unlink()
    return T.paper_table(T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper"), paper.TABLE2).caption


def test_a_paper_preset_run_with_other_settings_is_no_reproduction(tmp_path):
    caption = _msd_caption(tmp_path / "a", {"train.epochs": 1, "data.size": 64, "train.device": "cpu"})
    assert "data.size=64 (paper: 256); train.epochs=1 (paper: 50); so the Δ row is no reproduction check" in caption
    assert "train.device" not in caption
    assert "reproduction" not in _msd_caption(tmp_path / "b", {"train.device": "cpu", "train.compile": "default",
                                                               "train.feature_cache": False})
    assert "not recorded (no config.yaml)" in _msd_caption(tmp_path / "c", keep_config=False)
    # the SegDINO head with other options is not the paper's head
    assert 'decoder.options={"features":64} (paper: {})' in _msd_caption(tmp_path / "d",
                                                                         {"decoder.options": {"features": 64}})


def test_another_preset_names_the_settings_it_changes(tmp_path):
    write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.9}}, preset="public-code")
    ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "public-code")
    caption = T.paper_table(ctx, paper.TABLE2).caption
    for text in ("run.preset=public-code (paper: paper)", "train.freeze_backbone=false (paper: true)",
                 "train.selection_split=test (paper: val)", "train.batch_size=8 (paper: 4)"):
        assert text in caption


def test_one_context_never_mixes_recipes(tmp_path):
    write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.9}})
    write_exact_run(tmp_path, "msd", "segdino", 1, {"mirror": {"iou": 0.5}}, settings={"optim.lr": 3e-4})
    runs = load_runs(tmp_path)
    with pytest.raises(ValueError, match="differ in their settings"):
        T.Context.from_runs(runs, "dinov3_vits16", "paper")
    ctx = T.Context.from_runs(runs, "dinov3_vits16", "paper", recipe="optim.lr=0.0003")
    t = T.paper_table(ctx, paper.TABLE2)
    assert t.sections[0].title == "Ours: backbone dinov3_vits16, preset paper, optim.lr=0.0003"
    assert T.cell_plain(t.sections[0].rows[0][1][0]) == "0.500"
    assert "optim.lr=0.0003 (paper: 0.0001)" in t.caption


def test_captions_say_which_accuracy_acc_is_and_why_precision_can_mislead(built):
    assert "Acc is pixel accuracy" in built["table2_msd"].caption and "`acc_mirror`" in built["table2_msd"].caption
    assert "Acc is pixel accuracy" in built["dataset_msd__mirror"].caption
    assert "an empty prediction scores 1" in built["dataset_folder-mydata__segdino"].caption
    assert "Precision" not in built["dataset_msd__mirror"].caption   # not shown there


def _folder_ctx(root, roots=("/data/a", "/data/b"), values=(0.9, 0.5)):
    """SegDINO on two of a user's folders, one seed each, in one runs directory (the seeds differ, so both runs fit
    under `folder/`)."""
    for seed, (data_root, dice) in enumerate(zip(roots, values)):
        write_exact_run(root, "folder", "segdino", seed, {"segdino": {"dice": dice}},
                        settings={"data.root": data_root})
    return T.Context.from_runs(load_runs(root), "dinov3_vits16", "paper")


def test_two_folders_are_two_datasets_never_one_mean(tmp_path):
    """Every folder's runs sit under RUNS_DIR/folder/ and data.root is a setting runs may differ in: the runs of two
    folders used to be averaged as one dataset `folder` (0.7 here)."""
    ctx = _folder_ctx(tmp_path)
    assert ctx.datasets == ["folder/a", "folder/b"]
    assert [(ctx.stat(d, "segdino", "segdino", "dice", 4).mean, ctx.stat(d, "segdino", "segdino", "dice", 4).n)
            for d in ctx.datasets] == [(0.9, 1), (0.5, 1)]
    tables = {t.key: t for t in T.build_tables(ctx)}
    assert tables["dataset_folder-a__segdino"].title == "folder (a), profile segdino: all recorded metrics"
    assert tables["dataset_folder-b__segdino"].caption.startswith("folder (b): every metric recorded under")
    assert T.cell_plain(tables["dataset_folder-b__segdino"].sections[0].rows[0][1][0]) == "0.5000"


def test_a_skipped_folder_run_counts_under_every_folder(tmp_path):
    # its config.yaml is not read, so its folder is unknown: "folder" in the run's path matches each folder column
    _folder_ctx(tmp_path)
    (write_exact_run(tmp_path, "folder", "segdino", 2, {"segdino": {"dice": 0.1}}) / "DONE").unlink()
    runs = load_runs(tmp_path)
    ctx = T.Context.from_runs(runs, "dinov3_vits16", "paper")
    coverage = T.coverage_table(ctx.wide, runs.skipped, "dinov3_vits16", "paper")
    assert [c.label for c in coverage.columns] == ["folder (a)", "folder (b)"]
    assert [T.cell_plain(c) for c in coverage.sections[0].rows[0][1]] == ["s0 (+1 skipped)", "s1 (+1 skipped)"]


def test_dataset_tables_say_the_size_the_other_settings_and_what_selected_the_epoch(built, tmp_path):
    """The per-dataset tables (a folder dataset's only tables) said neither how the runs were trained nor which
    images picked their epoch; the paper tables say it against the paper's recipe."""
    for key in ("dataset_folder-mydata__segdino", "dataset_kvasir__medical-native"):
        caption = built[key].caption
        assert "Trained at 256×256. Our models are the epoch of best validation Dice; validation: 10% of the " \
               "training images, held out per seed." in caption, key
        assert "paper's code" not in caption   # the public code's choice is the paper tables' point
    assert "validation: 20% of the training images, one fold of its fold file" in built["dataset_tn3k__segdino"].caption
    write_exact_run(tmp_path, "kvasir", "segdino", 0, {"segdino": {"dice": 0.8}},
                    settings={"data.size": 128, "train.epochs": 2, "train.selection_split": "test"})
    table = T.dataset_tables(T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper"), "kvasir")[0]
    assert ("Trained at 128×128 with preset `paper`'s settings except train.epochs=2, train.selection_split=test. "
            "Our models are the epoch of best Dice on the test split") in table.caption   # no split.json: the config
    assert "Trained at 128$\\times$128 with preset \\texttt{paper}'s settings" in T.to_latex(table)


def test_presets_copied_for_captions_are_benchmarks_presets():
    from benchmark.config import PRESETS, flatten, load_config

    assert set(paper.PRESET_CHANGES) == set(PRESETS)
    for preset in PRESETS:
        settings = flatten(load_config(preset).to_dict())
        assert paper.preset_recipe(preset) == {k: settings[k] for k in paper.RECIPE}, preset
    assert paper.preset_recipe("my-preset") is None


def test_an_undefined_value_is_n_a_not_missing(tmp_path):
    """metrics.json holds null (or, written before, a bare NaN) for a mean HD95 over no finite image: measured but
    undefined, shown "n/a"; "--" stays for a value nobody measured (UNet's HD95 here)."""
    for seed, hd95 in enumerate((None, math.nan)):
        write_exact_run(tmp_path, "kvasir", "segdino", seed, {"segdino": {"dice": 0.5, "hd95": hd95}})
    write_exact_run(tmp_path, "kvasir", "dpt", 0, {"segdino": {"dice": 0.6, "hd95": 20.0}})
    write_exact_run(tmp_path, "kvasir", "dpt", 1, {"segdino": {"dice": 0.7, "hd95": None}})
    for seed in (0, 1):
        write_exact_run(tmp_path, "kvasir", "unet", seed, {"segdino": {"dice": 0.4}})
    ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper")
    assert "NaN" in (tmp_path / "kvasir" / "segdino__dinov3_vits16__paper__s1" / "metrics.json").read_text()
    for table in (T.dataset_tables(ctx, "kvasir")[0], T.paper_table(ctx, paper.TABLE1)):
        hd95 = [c.metric for c in table.columns].index("hd95")
        rows = {label: cells[hd95] for label, cells in table.sections[0].rows}
        assert T.cell_plain(rows["SegDINO"]) == "n/a" and T.cell_tex(rows["SegDINO"]) == "n/a"
        assert T.cell_plain(rows["UNet"]) == "--"
        assert T.cell_plain(rows["DPT"]) == "20.00 (n=1)"   # the defined seed only, marked
        assert ("n/a: measured but undefined, null or NaN in metrics.json (HD95: infinite distances from empty "
                "predictions or ground truths left no finite mean); -- not measured.") in table.caption
        assert "A mean leaves out the seeds whose value is undefined" in table.caption
    clean = write_exact_run(tmp_path / "clean", "kvasir", "segdino", 0, {"segdino": {"dice": 0.5, "hd95": 9.0}})
    table = T.dataset_tables(T.Context.from_runs(load_runs(clean.parents[1]), "dinov3_vits16", "paper"), "kvasir")[0]
    assert "n/a" not in table.caption and not table.caption.endswith(" ")


def test_a_public_code_recipe_is_not_called_frozen(tmp_path):
    """The public-code preset trains the backbone: its heading, Table 1 caption and efficiency caption say so."""
    for method in ("segdino", "unet"):
        write_exact_run(tmp_path, "kvasir", method, 0, {"segdino": {"dice": 0.8, "hd95": 20.0}},
                        preset="public-code")
    ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "public-code")
    assert not ctx.frozen and ctx.heading.startswith("Trained backbone dinov3_vits16, preset public-code")
    assert "our pretrained backbone" in T.paper_table(ctx, paper.TABLE1).caption
    paper_ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "public-code")
    object.__setattr__(paper_ctx, "settings", {**paper_ctx.settings, "train.freeze_backbone": True})
    assert paper_ctx.frozen and paper_ctx.heading.startswith("Frozen backbone")


def test_a_cell_short_of_its_rows_seeds_is_marked_at_the_usual_count(tmp_path):
    """SegDINO has a third seed whose HD95 is undefined: its DSC rests on 3 seeds, its HD95 on 2, the count the
    caption gives as usual (UNet's). The HD95 cell is marked n=2 all the same: the worst seed is not in it."""
    for seed in (0, 1, 2):
        write_exact_run(tmp_path, "kvasir", "segdino", seed,
                        {"segdino": {"dice": 0.5, "hd95": None if seed == 2 else 20.0 + seed}})
    for seed in (0, 1):
        write_exact_run(tmp_path, "kvasir", "unet", seed, {"segdino": {"dice": 0.4, "hd95": 30.0}})
    ctx = T.Context.from_runs(load_runs(tmp_path), "dinov3_vits16", "paper")
    t = T.paper_table(ctx, paper.TABLE1)
    cells = dict(t.sections[0].rows)["SegDINO"]
    by_metric = {c.metric: cell for c, cell in zip(t.columns, cells)}
    assert by_metric["dice"].mark == "n=3" and by_metric["hd95"].mark == "n=2"
    assert dict(t.sections[0].rows)["UNet"][0].mark == ""
