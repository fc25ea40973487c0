"""The registries: plain dicts from key to constructor. The key is the CLI value, the run-directory component and
the table row key, the same string everywhere."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from baselines import DPTHead, UNetHead, UPerNetHead, dpt_small, unet_small, upernet_small
from segdino.backbone import BACKBONES, build_backbone
from segdino.head import SegDINOHead
from segdino.model import Segmenter

from benchmark.data.base import DataError, DatasetSource, not_a_folder, sub_dirs
from benchmark.data.folder import open_folder
from benchmark.data.isic2017 import open_isic2017
from benchmark.data.kvasir import open_kvasir
from benchmark.data.msd import open_msd
from benchmark.data.tn3k import open_tn3k
from benchmark.data.visha import open_visha
from benchmark.data.vmd import open_vmd

DECODERS: dict[str, Callable] = {
    "segdino": SegDINOHead,
    "unet": UNetHead,
    "upernet": UPerNetHead,
    "dpt": DPTHead,
    # the same designs at SegDINO's trainable-parameter budget (baselines/budget.py)
    "unet-small": unet_small,
    "upernet-small": upernet_small,
    "dpt-small": dpt_small,
}

# key -> (loader, the folder names it has after unzipping, matched case-insensitively)
DATASETS: dict[str, tuple[Callable[[Path], DatasetSource], tuple[str, ...]]] = {
    "tn3k": (open_tn3k, ("tn3k", "TN3K")),
    "kvasir": (open_kvasir, ("Kvasir-SEG", "kvasir")),
    # or the folder holding the ISIC-2017_* folders
    "isic2017": (open_isic2017, ("ISIC-2017", "isic2017", "ISIC2017")),
    "msd": (open_msd, ("MSD",)),
    "vmd": (open_vmd, ("VMD", "VMD-D")),
    "visha": (open_visha, ("ViSha",)),
    "folder": (open_folder, ()),   # a user's images/ + masks/ folder: --data-root is that folder
}


class UnknownKey(ValueError, KeyError):
    """A key no registry holds: a lookup failure (KeyError) that is the user's to fix (ValueError, which the CLI
    prints as one line; a KeyError from a bug keeps its traceback)."""

    def __str__(self) -> str:   # the message, not KeyError's repr of it
        return str(self.args[0]) if self.args else ""


def check_key(kind: str, key: str, registry: dict) -> str:
    if key not in registry:
        raise UnknownKey(f"unknown {kind} '{key}'; valid: {', '.join(registry)}")
    return key


def check_config(cfg) -> None:
    """Fail early, with the valid keys, on an unknown method, dataset or backbone, and on decoder options the method
    does not take (built on the meta device: no memory, no time)."""
    import torch

    from benchmark.config import ConfigError
    from segdino.backbone import embed_dim, get_spec

    check_key("method", cfg.decoder.name, DECODERS)
    check_key("dataset", cfg.data.dataset, DATASETS)
    if cfg.data.num_classes is not None and cfg.data.num_classes < 2:
        raise ConfigError(f"data.num_classes (--num-classes) counts the background too: 2 for binary masks, not "
                          f"{cfg.data.num_classes}")
    if cfg.data.num_classes not in (None, 2) and cfg.data.dataset != "folder":
        raise ConfigError(f"data.num_classes (--num-classes) {cfg.data.num_classes} is for folder datasets; "
                          f"{cfg.data.dataset} is binary")
    get_spec(cfg.backbone.name)
    if cfg.decoder.options:
        try:
            with torch.device("meta"):
                build_decoder(cfg.decoder.name, embed_dim(cfg.backbone.name), 1, **cfg.decoder.options)
        except (TypeError, ValueError, RuntimeError) as exc:   # RuntimeError: e.g. a negative width
            takes = decoder_options(cfg.decoder.name)
            raise ConfigError(f"decoder.options {cfg.decoder.options} do not fit method '{cfg.decoder.name}': "
                              f"{exc}; it takes {', '.join(takes) if takes else 'no options'}") from None


def decoder_options(name: str) -> list[str]:
    """The options a method takes in decoder.options, with their defaults (`features=256`)."""
    import inspect

    params = list(inspect.signature(DECODERS[name]).parameters.values())[2:]   # after in_channels, num_classes
    return [p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}" for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def build_decoder(name: str, in_channels: int, num_classes: int, **options):
    return DECODERS[check_key("method", name, DECODERS)](in_channels, num_classes, **options)


def build_model(cfg, num_classes: int = 2) -> Segmenter:
    """The frozen (or, for the public-code preset, trainable) backbone with the configured decoder; binary
    datasets get one output channel (REFERENCE.md §2)."""
    backbone = build_backbone(cfg.backbone.name, cfg.backbone.weights)
    out_channels = 1 if num_classes == 2 else num_classes
    decoder = build_decoder(cfg.decoder.name, backbone.embed_dim, out_channels, **cfg.decoder.options)
    return Segmenter(backbone, decoder, freeze_backbone=cfg.train.freeze_backbone)


def is_runs_folder(folder: Path) -> bool:
    """Whether `folder` is a dataset level of a segbench runs directory (RUNS/<dataset>/, `records.run_dir_for`):
    it holds run directories (a run directory holds a config.yaml, `records.load_config_file`) and nothing else but
    folders named like one (method__backbone__preset__sSEED, e.g. a corrupt run moved aside). A dataset folder that
    a run was written into holds its own folders too (images/, ...), and stays a dataset folder."""
    runs = sub_dirs(folder)
    has_config = [(run / "config.yaml").is_file() for run in runs]
    return any(has_config) and all(ok or "__" in run.name for run, ok in zip(runs, has_config))


def find_dataset_root(key: str, data_root: str | Path) -> Path:
    """`data_root` is the dataset's own folder or a folder holding several, under their usual unzipped names or, when
    no child has one, under any name, found by their layout as `data check` finds them (VMD-D is assembled by hand,
    so its folder's name is the user's). A child folder that is a runs folder (`--runs-dir` set to the data root
    writes RUNS/<dataset>/ there) is passed over. A folder dataset is `data_root` itself."""
    check_key("dataset", key, DATASETS)
    data_root = Path(data_root).expanduser()
    if not data_root.is_dir():
        raise DataError(not_a_folder(data_root))
    names = {n.lower() for n in DATASETS[key][1]}
    if data_root.name.lower() in names:
        return data_root
    for child in sorted(data_root.iterdir()):
        if child.is_dir() and child.name.lower() in names and not is_runs_folder(child):
            return child
    if key == "folder":
        return data_root
    from benchmark.data.check import detect_datasets

    found = [folder for k, folder in detect_datasets(data_root) if k == key]
    if len(found) > 1:
        raise DataError(f"{data_root} holds {len(found)} folders laid out as {key}: "
                        f"{', '.join(f.name for f in found)}; give the one to use as the data root")
    return found[0] if found else data_root


def open_dataset(key: str, data_root: str | Path, num_classes: int | None = None) -> DatasetSource:
    """The dataset `key` under `data_root`. `num_classes` (data.num_classes) is the folder dataset's class count,
    checked against every mask (None: inferred from them); the downloaded datasets are binary."""
    loader = DATASETS[check_key("dataset", key, DATASETS)][0]
    if key == "folder":
        return loader(find_dataset_root(key, data_root), num_classes=num_classes)
    if num_classes not in (None, 2):
        raise DataError(f"{key} is a binary dataset: --num-classes (data.num_classes) {num_classes} is for folder "
                        "datasets")
    return loader(find_dataset_root(key, data_root))


def open_data(data) -> DatasetSource:
    """The dataset a config's `data` section names."""
    return open_dataset(data.dataset, data.root, data.num_classes)


def canonical_data(cfg, source: DatasetSource) -> tuple:
    """(`cfg`, notes) with the data settings that change nothing on `source` at their defaults: a --num-classes
    equal to the count its masks give without it, and a data.val_fraction its validation split does not come from
    (TN3K's fold files, an official or listed validation split, selection on the test split or none). One run either
    way (one config.yaml, one recipe in a report), so a run started without the setting resumes with it."""
    import dataclasses

    from benchmark.config import DataConfig

    changes, notes = {}, []
    given = cfg.data.num_classes
    if given is not None and given == source.inferred_classes:
        changes["num_classes"] = None
        notes.append(f"--num-classes {given} is the count the masks give: recorded as inferred")
    default = DataConfig.val_fraction
    if cfg.data.val_fraction != default and not carves_validation(cfg, source):
        changes["val_fraction"] = default
        notes.append(f"data.val_fraction {cfg.data.val_fraction} is not used: {_validation_from(cfg, source)}; "
                     f"recorded as the default ({default})")
    if not changes:
        return cfg, []
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **changes)), notes


def carves_validation(cfg, source: DatasetSource) -> bool:
    """Whether `cfg`'s validation split is carved from training by data.val_fraction (`splits.make_splits`)."""
    return cfg.train.selection_split == "val" and not source.splits.get("val") and not source.val_folds


def _validation_from(cfg, source: DatasetSource) -> str:
    if cfg.train.selection_split != "val":
        return f"train.selection_split is {cfg.train.selection_split}"
    if source.splits.get("val"):
        return "the validation split is the dataset's val.txt" if source.name == "folder" else \
            f"{source.name}'s validation split is its official one"
    return f"{source.name}'s validation split is a fold of its fold files (seed mod {len(source.val_folds)})"


__all__ = ["BACKBONES", "DECODERS", "DATASETS", "build_decoder", "build_model", "check_config", "open_data",
           "open_dataset", "find_dataset_root", "is_runs_folder", "check_key"]
