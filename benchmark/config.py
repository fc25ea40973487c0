"""Nested frozen dataclasses, named presets, a YAML file per experiment, and CLI overrides, merged in that order.

A preset is a complete recipe expressed as overrides of the defaults; the defaults are the paper's recipe
(REFERENCE.md §2). The resolved config is written to the run directory before the first step.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class BackboneConfig:
    name: str = "dinov3_vits16"
    weights: str | None = None          # a file, hub:NAME, or None for random init


@dataclass(frozen=True)
class DecoderConfig:
    name: str = "segdino"                # the method key
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "kvasir"
    root: str | None = None
    size: int = 256                      # square input side, a multiple of 16 (REFERENCE.md §2)
    subset: int | None = None            # first N per split, for smoke runs on real data
    val_fraction: float = 0.1            # carved from train, by group (video), seeded; unused where the dataset
    #                                      has its own validation split (ISIC, TN3K folds, a folder's val.txt)
    skip_bad: bool = False               # skip unreadable samples (recorded) instead of failing
    cache_dir: str | None = None         # decoded-image and feature caches; None -> RUNS_DIR/.cache
    num_classes: int | None = None       # folder datasets: classes with the background; None -> from the masks


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 1e-4


SELECTIONS = ("val", "test", "last")   # train.selection_split: what picks the epoch that is scored


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    batch_size: int = 4
    seed: int = 0
    freeze_backbone: bool = True
    selection_split: str = "val"         # "val" (ours), "test" (the public code's choice), "last" (no selection)
    drop_last: bool = False
    device: str = "auto"                 # auto -> cuda if available, else cpu
    amp_dtype: str | None = None         # e.g. bfloat16 on GPUs
    feature_cache: bool = True           # use cached frozen-backbone features when the recipe allows
    features_on_device: str = "auto"     # hold cached features in accelerator memory: auto (when they fit), yes, no
    checkpoint_every_s: float = 60.0     # checkpoint after the first and last epoch and at most this often between
    #                                      (rarer when writing one would take over 2% of the time: train.checkpoint_due)
    num_workers: int = 0                 # CPU workers: decode threads, test-scoring processes (0: per core, <= 8)
    compile: str | None = "none"         # torch.compile the decoder: none, default, reduce-overhead, max-autotune


@dataclass(frozen=True)
class EvalConfig:
    profiles: tuple[str, ...] | None = None   # None -> the dataset's own profiles
    n_samples: int = 4                        # test images saved to samples/ for the report's qualitative grid


@dataclass(frozen=True)
class RunConfig:
    preset: str = "paper"
    runs_dir: str = "runs"


@dataclass(frozen=True)
class Config:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # The paper's recipe: frozen backbone, AdamW 1e-4 / 1e-4, 50 epochs, batch 4, 256 x 256 (REFERENCE.md §2).
    "paper": {},
    # The public code's behaviour: backbone never frozen, model picked on the test split, batch 8 with drop_last.
    "public-code": {"train.freeze_backbone": False, "train.selection_split": "test", "train.batch_size": 8,
                    "train.drop_last": True},
    # Tiny and fast, for CPU tests and the demo.
    "smoke": {"backbone.name": "test", "train.epochs": 12, "train.batch_size": 8, "optim.lr": 3e-4},
}


class ConfigError(ValueError):
    pass


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _field_types(section) -> dict[str, set]:
    """{key: the set of plain types its annotation allows (NoneType for `| None`)} for one config section."""
    import types
    import typing

    allowed = {}
    for name, hint in typing.get_type_hints(type(section)).items():
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
            else (hint,)
        allowed[name] = {typing.get_origin(a) or a for a in args}
    return allowed


def _coerce(value: Any, allowed: set, key: str) -> Any:
    """`value` (a CLI string, or what YAML parsed) as the type the key declares, or a ConfigError naming the key:
    a YAML `epochs: 1.5` or `--set eval.profiles=mirror` must not reach the training loop half-converted."""
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{key} cannot be empty (null)")
    if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in allowed:
        return None
    if bool in allowed:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    for kind, name in ((int, "an integer"), (float, "a number")):
        if kind not in allowed:
            continue
        if isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                raise ConfigError(f"{key}: expected {name}, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise ConfigError(f"{key}: expected {name}, got {value!r}")
        return kind(value)
    if tuple in allowed:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{key}: expected a comma-separated list or a YAML list of names, got {value!r}")
        return tuple(v.strip() for v in items if v.strip())
    if dict in allowed:
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                pass
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, e.g. {key}={{width: 128}} or a nested YAML block, "
                              f"got {value!r}")
        return dict(value)
    if isinstance(value, bool):   # YAML 1.1 reads a bare yes / no as a boolean (train.features_on_device: yes)
        return "yes" if value else "no"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a name or path, got {value!r}")
    return value


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Apply `section.key: value` overrides, checking that every key exists and converting each value to its
    declared type."""
    sections = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if section not in sections:
            raise ConfigError(f"unknown config key '{dotted}'; sections: {', '.join(sections)}")
        allowed = _field_types(sections[section])
        if key not in allowed:
            raise ConfigError(f"unknown config key '{dotted}'; {section}.* keys: {', '.join(allowed)}")
        sections[section] = dataclasses.replace(sections[section], **{key: _coerce(value, allowed[key], dotted)})
    return Config(**sections)


def flatten(nested: dict, where: str = "config") -> dict[str, Any]:
    """{"section.key": value} from a mapping of sections (a YAML file, a config.yaml)."""
    flat = {}
    for section, values in nested.items():
        if values is not None and not isinstance(values, dict):
            raise ConfigError(f"{where}: section '{section}' must be a mapping of keys (e.g. {section}: "
                              f"{{key: value}}), got {values!r}")
        flat.update({f"{section}.{k}": v for k, v in (values or {}).items()})
    return flat


# set by --preset only: a preset is a set of overrides, so naming one in a file or --set would relabel the run
# without applying its recipe
NOT_OVERRIDABLE = {"run.preset": "choose the preset with --preset"}


def _without_fixed_keys(overrides: dict[str, Any], where: str, preset: str) -> dict[str, Any]:
    """`overrides` less run.preset when it names the preset chosen (a run's own config.yaml given as --config), or
    a ConfigError when it names another."""
    for key, fix in NOT_OVERRIDABLE.items():
        if key in overrides and overrides[key] != preset:
            raise ConfigError(f"{where} sets {key}={overrides[key]}, which is not a setting: {fix}")
    return {k: v for k, v in overrides.items() if k not in NOT_OVERRIDABLE}


def load_config(preset: str = "paper", yaml_file: str | Path | None = None,
                overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the preset, then a YAML file (nested like the dataclasses), then CLI overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; valid: {', '.join(PRESETS)}")
    cfg = apply_overrides(Config(), {**PRESETS[preset], "run.preset": preset})
    if yaml_file is not None:
        path = Path(yaml_file)
        if not path.is_file():
            raise ConfigError(f"--config {path} is a folder: give a YAML file" if path.is_dir()
                              else f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            raise ConfigError(f"{path} is not valid YAML" + (f" (line {where.line + 1}, column {where.column + 1}: "
                              f"{exc.problem})" if where is not None else f" ({exc})")) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{yaml_file}: expected a mapping of sections")
        from_file = _without_fixed_keys(flatten(data, str(path)), str(path), preset)
        cfg = apply_overrides(cfg, from_file)
    cfg = apply_overrides(cfg, _without_fixed_keys(overrides or {}, "--set", preset))
    validate(cfg)
    if yaml_file is not None:
        _check_relative_inputs(cfg, from_file, Path(yaml_file))
    return absolute_paths(cfg)


def _check_relative_inputs(cfg: Config, from_file: dict[str, Any], path: Path) -> None:
    """A relative path in a config file is read from the working directory, as on the command line; one that is
    missing there but present beside the file was meant from the file's folder: say so rather than fail later with
    "not found"."""
    for key in ("data.root", "backbone.weights"):
        value = from_file.get(key)
        section, name = key.split(".")
        if (not isinstance(value, str) or value != getattr(getattr(cfg, section), name) or value.startswith("hub:")
                or Path(value).expanduser().is_absolute() or Path(value).exists()):
            continue
        beside = path.parent / value
        if beside.exists():
            raise ConfigError(f"{path} sets {key}: {value}, which is not in the working directory {Path.cwd()}: "
                              f"paths in a config file are read from where segbench runs, as on the command line; "
                              f"write {beside.absolute()} if that is the one")


def absolute_paths(cfg: Config) -> Config:
    """Record where things are as absolute paths, so a run directory can be evaluated from any folder."""
    def resolve(path: str | None) -> str | None:
        return None if path is None else str(Path(path).expanduser().absolute())

    weights = cfg.backbone.weights
    if weights not in (None, "", "none") and not str(weights).startswith("hub:"):
        weights = resolve(weights)
    return dataclasses.replace(
        cfg, backbone=dataclasses.replace(cfg.backbone, weights=weights),
        data=dataclasses.replace(cfg.data, root=resolve(cfg.data.root), cache_dir=resolve(cfg.data.cache_dir)),
        run=dataclasses.replace(cfg.run, runs_dir=resolve(cfg.run.runs_dir)))


COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


AMP_DTYPES = (None, "", "none", "bfloat16", "float32")


DEVICE_NAMES = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(name: str, option: str = "--device") -> None:
    """A device spelled as segbench runs on (torch also knows mps, xpu, ... which this loop is not tested on)."""
    if not isinstance(name, str) or not DEVICE_NAMES.fullmatch(name):
        raise ConfigError(f"{option} {name!r}: use auto, cpu, cuda or cuda:N (e.g. cuda:1)")


def validate(cfg: Config) -> None:
    check_device(cfg.train.device, "train.device")
    for key, value, low in (("optim.lr", cfg.optim.lr, "above 0"), ("optim.weight_decay", cfg.optim.weight_decay,
                            "at least 0"), ("train.seed", cfg.train.seed, "at least 0"),
                            ("train.checkpoint_every_s", cfg.train.checkpoint_every_s, "at least 0"),
                            ("train.num_workers", cfg.train.num_workers, "at least 0")):
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, not {value}")
        if value < 0 or (value == 0 and low == "above 0"):
            raise ConfigError(f"{key} must be {low}, not {value}")
    for key, value in (("train.epochs", cfg.train.epochs), ("train.batch_size", cfg.train.batch_size),
                       ("data.subset", 1 if cfg.data.subset is None else cfg.data.subset)):
        if value < 1:
            raise ConfigError(f"{key} must be at least 1, not {value}")
    if cfg.train.amp_dtype not in AMP_DTYPES:
        hint = (": float16 needs loss scaling, which segbench's loop does not do; use bfloat16"
                if cfg.train.amp_dtype == "float16" else "")
        raise ConfigError(f"train.amp_dtype must be bfloat16, float32 or none, not {cfg.train.amp_dtype!r}{hint}")
    if cfg.data.size <= 0 or cfg.data.size % 16:
        raise ConfigError(f"input size {cfg.data.size} is not a positive multiple of 16 (the ViT patch size); "
                          f"try {max(16, round(cfg.data.size / 16) * 16)}")
    if not 0 <= cfg.data.val_fraction < 1:
        raise ConfigError(f"data.val_fraction is the share of the training split held out for validation, between "
                          f"0 and 1 (paper recipe: 0.1), not {cfg.data.val_fraction}")
    if cfg.eval.profiles is not None:
        from benchmark.metrics.profiles import PROFILES

        unknown = [p for p in cfg.eval.profiles if p not in PROFILES]
        if unknown or not cfg.eval.profiles:
            raise ConfigError(f"eval.profiles: unknown scoring profile {', '.join(map(repr, unknown)) or '(none)'}; "
                              f"valid: {', '.join(PROFILES)} (comma-separated)")
    if cfg.train.selection_split not in SELECTIONS:
        raise ConfigError(f"train.selection_split must be one of {', '.join(SELECTIONS)} (val: best epoch on a "
                          "validation split carved from training; test: on the test split, as the public code; "
                          f"last: the last epoch, no validation split), not {cfg.train.selection_split!r}")
    if cfg.train.compile not in COMPILE_MODES and cfg.train.compile is not None:   # `--set ...=none` reads as None
        raise ConfigError(f"train.compile must be one of {', '.join(COMPILE_MODES)}, not {cfg.train.compile!r}")


def config_from_dict(data: dict) -> Config:
    """Rebuild a Config from a resolved config.yaml."""
    cfg = apply_overrides(Config(), flatten({k: v for k, v in data.items()}))
    return cfg


def dump_yaml(cfg: Config) -> str:
    def plain(obj):
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [plain(v) for v in obj]
        return obj
    return yaml.safe_dump(plain(cfg.to_dict()), sort_keys=False)
