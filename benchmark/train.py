"""One training run, top to bottom: seed, build, data, optimiser, loop, select, evaluate, record.

A run directory that has DONE is returned untouched; one with a checkpoint resumes from it and ends with the same
result as an uninterrupted run (shuffling is a pure function of seed and epoch, RNG states are checkpointed).
"""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm.auto import tqdm

from benchmark import records
from benchmark.config import Config, check_device, dump_yaml
from benchmark.data.base import DataError
from benchmark.data.image_cache import CONTENT_SCHEME, ResizedSplit, load_resized
from benchmark.data.splits import make_splits, manifest, size_fingerprint
from benchmark.evaluate import (
    keeping,
    predict_batches,
    profiles_for,
    sample_indices,
    save_samples,
    score_split,
    to_input,
    validate,
)
from benchmark.features import cached_features
from benchmark.metrics.score import masks_without_image
from benchmark.progress import bars_off
from benchmark.records import trainable_state
from benchmark.registry import build_model, canonical_data, open_data
from segdino.model import Segmenter


class RunConflict(RuntimeError):
    """A run directory holds a different config than the one asked for."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class EpochBoundaryInterrupt:
    """Ctrl-C during the epoch loop: the first finishes the epoch under way, which is then checkpointed, and stops
    the run (a checkpoint is otherwise written only every train.checkpoint_every_s, so a plain interrupt would lose
    the epochs since); a second stops at once. Only in the main thread, and only where Python's own Ctrl-C handler
    is installed (a host program's handler is left alone)."""

    def __init__(self, label: str, total: int):
        self.label, self.total = label, total
        self.epoch, self.saved = 0, 0   # the epoch under way (1-based) and the last one checkpointed
        self.requested, self._installed = False, False

    def __enter__(self) -> EpochBoundaryInterrupt:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            signal.signal(signal.SIGINT, self._first)
            self._installed = True
        return self

    def _first(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)   # the second Ctrl-C raises KeyboardInterrupt
        then = (f"resumes after epoch {self.saved}, its last checkpoint" if self.saved else
                "starts again from epoch 1")
        tqdm.write(f"Ctrl-C: {self.label} finishes epoch {self.epoch} of {self.total}, saves it and stops (Ctrl-C "
                   f"again stops now; the run then {then})", file=sys.stderr)

    def stop(self) -> KeyboardInterrupt:
        """The interrupt to raise once the epoch under way is checkpointed (`saved`): `cli.user_errors` reads its
        `boundary` as "nothing finished is lost"."""
        exc = KeyboardInterrupt(f"{self.label} stopped after epoch {self.saved} of {self.total}, which is saved: "
                                "the same command resumes it after that epoch")
        exc.boundary = True
        return exc

    def __exit__(self, *exc) -> None:
        if self._installed and signal.getsignal(signal.SIGINT) == self._first:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def resolve_device(name: str) -> torch.device:
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name}: this machine has no usable CUDA GPU; use --device cpu (or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name}: only {torch.cuda.device_count()} CUDA GPU(s) here (cuda:0 ...)")
    return device


def compile_decoder(model: Segmenter, cfg: Config) -> Segmenter:
    """`train.compile`: torch.compile the decoder in place (Module.compile), so state_dict keys, checkpoints and
    model.pt are those of the eager model; the frozen backbone (eval, no grad) is left eager."""
    if cfg.train.compile not in (None, "none"):
        model.decoder.compile(mode=None if cfg.train.compile == "default" else cfg.train.compile)
    return model


def autocast_dtype(cfg: Config) -> torch.dtype | None:
    return getattr(torch, cfg.train.amp_dtype) if cfg.train.amp_dtype not in (None, "", "none", "float32") else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def loss_fn(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits on one channel for binary masks (the public code; equals 2-class CE), CE otherwise."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], masks.float())
    return F.cross_entropy(logits, masks.long())


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def rng_state() -> dict:
    """RNG states as plain containers and tensors, so checkpoints load with `weights_only=True`."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, keys.tolist(), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():   # e.g. dropout drawn on the GPU
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])   # resumed on another machine: only the CPU streams carry over


def prepare_run_dir(cfg: Config, run_dir: Path) -> None:
    """Write config.yaml, or check that a run dir holding trained work was made by the same config. A directory
    left by a start that failed before its first checkpoint (e.g. an unreadable image, then `--skip-bad` as the
    error advised) holds nothing to keep: the new config takes it over."""
    if has_progress(run_dir):
        check_same_config(cfg, run_dir)
        return
    records.atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))


def has_progress(run_dir: Path) -> bool:
    """Whether `run_dir` holds trained work: a checkpoint, a finished run, or a selected model (a finished run's
    checkpoint is removed; its DONE may be lost by hand)."""
    return (run_dir / "config.yaml").is_file() and (records.is_done(run_dir) or (run_dir / "checkpoint.pt").is_file()
                                                    or (run_dir / "model.pt").is_file())


def check_same_config(cfg: Config, run_dir: Path) -> None:
    """Raise RunConflict naming the differing settings when `run_dir` holds trained work of another config (a
    finished run is never silently reported for a config it was not trained with)."""
    if not has_progress(run_dir):
        return
    # through Config, so settings added to segbench since the run started take their defaults
    stored = _flat(_comparable(yaml.safe_load(dump_yaml(records.load_config_file(run_dir)))))
    wanted = _flat(_comparable(yaml.safe_load(dump_yaml(cfg))))
    # skip_bad changes nothing for a run that met no unreadable sample (no skipped.json): the same samples train
    same_data = not (run_dir / "skipped.json").exists()
    diff = [f"{k}: {_shown(stored.get(k))} there, {_shown(wanted.get(k))} now"
            for k in sorted(set(stored) | set(wanted))
            if stored.get(k) != wanted.get(k) and not (k == "data.skip_bad" and same_data)]
    if diff:
        state = "a finished run" if records.is_done(run_dir) else "a run"
        if stored.get("data.folder") != wanted.get("data.folder"):   # another dataset's run: never "remove it"
            raise RunConflict(f"{run_dir} holds {state} of another folder dataset ({'; '.join(diff[:2])}); the "
                              "run directory names no folder dataset, so give each its own --runs-dir")
        raise RunConflict(f"{run_dir} holds {state} with a different config ({'; '.join(diff[:4])}"
                          f"{'; ...' if len(diff) > 4 else ''}); remove it or choose another --runs-dir")


def _shown(value) -> str:
    """A setting's value as it is written on the command line or in a YAML file (not Python's repr)."""
    if value is None or value == "":
        return "unset"
    if isinstance(value, (list, tuple)):
        return ",".join(map(_shown, value)) or "[]"
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def check_same_samples(cfg: Config, run_dir: Path, source, splits: tuple[str, ...] = ("train", "val", "test")) -> None:
    """Raise RunConflict when `run_dir` holds trained work on other samples than the data gives now (its split.json
    against `source`): files added or lost since, or another folder of the same name. The files are compared first
    (the training images, validation included, and the test images), so a lost training image is named as lost,
    not as validation images moving into training; then the seeded splits. `splits` limits the check (evaluate:
    test). A run without split.json (imported, or older) is not checked."""
    path = run_dir / "split.json"
    if not has_progress(run_dir) or not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return   # unreadable: the run's state says "corrupt"
    if not isinstance(recorded, dict):
        return
    selection = cfg.train.selection_split
    official = {k: [r.key for r in (v[:cfg.data.subset] if cfg.data.subset else v)] for k, v in source.splits.items()}

    def listed(*names) -> set:
        return {key for name in names for key in (recorded.get(name) or [])}
    pools = {}   # (recorded, now)
    if "train" in splits:   # the validation images of `val` come from training (ISIC: its official val split)
        with_val = ("train", "val") if selection == "val" else ("train",)
        pools["training"] = (listed(*with_val), {key for name in with_val for key in official.get(name, [])})
    if "test" in splits:
        pools["test"] = (listed("test"), set(official.get("test", [])))
    fix = ("Point --data-root at the data it was trained on, or, if the data changed on purpose, train it again: "
           "remove the run directory, or train into another --runs-dir")
    where = f"{run_dir} was trained on other files than {cfg.data.dataset} at {cfg.data.root} holds now"
    # where each file is now: a file gone from one pool may have moved to the other (a seeded split reshuffled)
    elsewhere = {"training": set(official.get("test", [])),
                 "test": {key for name in ("train", "val") for key in official.get(name, [])}}
    for pool, (was, now) in pools.items():
        if not was or was == now:
            continue
        other = "test" if pool == "training" else "training"
        gone, new = sorted(was - now), sorted(now - was)
        moved = [k for k in gone if k in elsewhere[pool]]
        came = [k for k in new if k in (listed("test") if pool == "training" else listed("train", "val"))]
        gone, new = [k for k in gone if k not in moved], [k for k in new if k not in came]
        what = "; ".join(f"{_count(len(keys), 'file')} {label} (first: {keys[0]})" for keys, label in
                         ((gone, "not there now"), (moved, f"now in the {other} split"),
                          (came, f"moved here from its {other} split"), (new, "new")) if keys)
        why = ""
        if (moved or came) and source.name == "folder" and not any((Path(source.root) / f).is_file()
                                                                   for f in ("train.txt", "test.txt")):
            why = (" A folder without split lists is split by a seeded shuffle of all its images, so adding or "
                   "removing one moves others between training and test; write train.txt and test.txt to fix the "
                   f"split (this run's, from the train, val and test lists in {path}).")
        raise RunConflict(f"{where}: of its {len(was)} {pool} images, {what}.{why} {fix}")
    sizes = recorded.get("file_sizes") if isinstance(recorded.get("file_sizes"), dict) else {}
    compared = (("train", "val") if "train" in splits else ()) + (("test",) if "test" in splits else ())
    changed = [name for name in compared if name in sizes and source.splits.get(name)
               and size_fingerprint(source.splits[name][:cfg.data.subset] if cfg.data.subset
                                    else source.splits[name]) != sizes[name]]
    gone = [f"the mask of {r.image}" if r.mask is None else str(path) for name in changed
            for r in source.splits[name] for path in (r.image, r.mask) if path is None or not path.is_file()]
    if gone:   # a run trained with every mask: a ref without one lost it
        raise RunConflict(f"{where}: {_count(len(gone), 'file')} of its {_official(cfg)}{' and '.join(changed)} "
                          f"split{'s' if len(changed) > 1 else ''} missing, e.g. {gone[0]}. {fix}")
    if changed:
        raise RunConflict(f"{where}: the same file names, but files of its {_official(cfg)}{' and '.join(changed)} "
                          f"split{'s' if len(changed) > 1 else ''} changed size since (replaced images or masks). "
                          f"{fix}")
    refs, rule = make_splits(source, cfg.train.seed, cfg.data.val_fraction, cfg.data.subset, selection)
    for name in splits:
        if isinstance(recorded.get(name), list) and set(recorded[name]) != {r.key for r in refs.get(name, [])}:
            raise RunConflict(f"{run_dir} was trained on the same files, split otherwise: its {name} split differs "
                              f"from the one made now (recorded rule: {recorded.get('validation_rule')}; now: {rule}). "
                              f"{fix}")


def _official(cfg: Config) -> str:
    """How messages name a dataset's splits: a folder dataset's are the user's own, not official ones."""
    return "" if cfg.data.dataset == "folder" else "official "


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _flat(cfg: dict) -> dict:
    return {f"{section}.{k}": v for section, values in cfg.items()
            for k, v in (values.items() if isinstance(values, dict) else [("", values)])}


def cache_dir(cfg: Config) -> Path:
    """Decoded images and backbone features, shared by all runs of a runs directory unless configured."""
    return Path(cfg.data.cache_dir) if cfg.data.cache_dir else Path(cfg.run.runs_dir) / ".cache"


def _comparable(cfg: dict) -> dict:
    """A config without the settings that may change between the attempts of one run: where it runs, how often it
    checkpoints and where its files are (moving the data or the runs folder must not block resuming). A `folder`
    dataset is the user's folder, so its name stays: two folders of one user must not share a run (or resume each
    other's checkpoint)."""
    drop = {"train": ("device", "num_workers", "features_on_device", "compile", "checkpoint_every_s"),
            "data": ("root", "cache_dir"), "run": ("runs_dir",)}
    out = {section: {k: v for k, v in values.items() if k not in drop.get(section, ())}
           if isinstance(values, dict) else values for section, values in cfg.items()}
    data = cfg.get("data") or {}
    if data.get("dataset") == "folder" and data.get("root"):
        out["data"]["folder"] = Path(data["root"]).name
    if isinstance(out.get("train"), dict) and out["train"].get("amp_dtype") in ("", "none", "float32"):
        out["train"]["amp_dtype"] = None   # three spellings of "no autocast" (autocast_dtype)
    return out


def load_data(cfg: Config, run_dir: Path, source=None) -> tuple[object, dict[str, ResizedSplit]]:
    """Decode each official split once (cached across runs and seeds), then take this seed's train / val / test
    as views of them, so the image and feature caches are shared by every seed's validation carving."""
    source = source or open_data(cfg.data)
    on_test = cfg.train.selection_split == "test"
    refs, rule = split_refs(cfg, source)
    if not cfg.data.subset and (lost := masks_without_image(source, "test")):
        raise DataError(f"{cfg.data.dataset}: {_count(len(lost), 'test mask')} with no image, e.g. {lost[0]}: the "
                        "test split is defined by its masks, so its scores would leave labelled frames out. Restore "
                        "the images (re-extract the dataset); `segbench data check` lists them")
    official = {name: load_resized(source, lst[:cfg.data.subset] if cfg.data.subset else lst, cfg.data.size,
                                   cache_dir(cfg), cfg.data.skip_bad, desc=name, workers=cfg.train.num_workers)
                for name, lst in source.splits.items() if lst}
    content = {name: split.cache_key for name, split in official.items()}   # a hash of every file's bytes
    if has_progress(run_dir):
        check_same_content(cfg, run_dir, content)
    sizes = {name: size_fingerprint(lst[:cfg.data.subset] if cfg.data.subset else lst)
             for name, lst in source.splits.items() if lst}
    records.write_json(run_dir / "split.json", {**manifest(refs, rule), "content": content,
                                                "content_scheme": CONTENT_SCHEME, "file_sizes": sizes})
    # each split is a view of the official split its refs came from (keys may repeat across official splits:
    # TN3K numbers its trainval and test images alike)
    origin = {"train": "train", "test": "test",
              "val": "test" if on_test else ("val" if source.splits.get("val") else "train")}
    splits = {name: official[origin[name]].subset(official[origin[name]].positions_of([r.key for r in refs[name]]))
              for name in ("train", "val", "test")}
    skipped = {name: s.skipped for name, s in official.items() if s.skipped}
    if skipped:
        records.write_json(run_dir / "skipped.json", skipped)
        tqdm.write(f"note: --skip-bad left out {sum(map(len, skipped.values()))} unreadable sample(s) ("
                   + ", ".join(f"{len(v)} of {name}" for name, v in skipped.items())
                   + f"); listed in {run_dir / 'skipped.json'}")
    if not any_foreground(splits["train"]):
        first = next((r.mask for r in splits["train"].refs if r.mask is not None), None)
        raise DataError(f"{cfg.data.dataset}: not one training mask has a foreground pixel under the dataset's mask "
                        f"rule ({source.mask_encoding}), e.g. {first}: masks saved as 0/1 in JPEG, or all-zero, read "
                        "as empty, and a model trained on them scores well on empty test masks. Save binary masks as "
                        "0/255 (or as lossless 0/1 PNG); `segbench data check` lists the masks it reads")
    for name, split in splits.items():
        if len(split) == 0 and len(refs[name]):
            raise DataError(f"{cfg.data.dataset}: the {name} split is empty after --skip-bad left out its unreadable "
                            f"samples (see {run_dir / 'skipped.json'}); repair or replace those files")
    if len(splits["val"]) and not any_foreground(splits["val"]):
        raise DataError(_empty_validation_message(cfg, splits["val"], rule))
    return source, splits


def _empty_validation_message(cfg: Config, val: ResizedSplit, rule: str) -> str:
    """Every validation mask is empty: an empty prediction scores Dice 1 on each, so every epoch ties and the first
    would be kept, silently."""
    groups = sorted({r.group for r in val.refs if r.group})
    what = (f"{_count(len(val), 'image')}" + (f" of {_count(len(groups), 'video')} ({', '.join(groups[:4])}"
                                              f"{', ...' if len(groups) > 4 else ''})" if groups else ""))
    fixes = "another --seed, a larger --set data.val_fraction=, " if "seeded split" in rule else ""
    return (f"{cfg.data.dataset}: not one validation mask has a foreground pixel ({what}; {rule}): an empty "
            f"prediction scores Dice 1 on every one, so every epoch would tie and epoch 1 would be kept. Use "
            f"{fixes}or --set train.selection_split=last to keep the last epoch with no validation")


def any_foreground(split: ResizedSplit, chunk: int = 256) -> bool:
    """Whether any mask of `split` has a foreground pixel (read in chunks, stopping at the first)."""
    return any(np.asarray(split.masks[i:i + chunk]).any() for i in range(0, len(split), chunk))


def check_same_content(cfg: Config, run_dir: Path, content: dict[str, str]) -> None:
    """A run resumes (or is re-scored) only on the files it was trained on: the same names (check_same_samples) and,
    here, the same bytes (split.json's content hashes of the official splits, the image cache's keys). Hashes of
    another scheme (a future image-cache version) are not compared: a new scheme must not block every resume."""
    try:
        split = json.loads((run_dir / "split.json").read_text())
        recorded = split.get("content") or {} if split.get("content_scheme") == CONTENT_SCHEME else {}
    except (OSError, ValueError, AttributeError):
        return
    changed = [name for name, key in recorded.items() if content.get(name, key) != key]
    if changed:
        raise RunConflict(f"{run_dir} was trained on other files than {cfg.data.dataset} at {cfg.data.root} holds "
                          f"now: the same file names, but the contents of its {_official(cfg)}{' and '.join(changed)} "
                          f"split{'s' if len(changed) > 1 else ''} changed since. Point --data-root at the data it was "
                          "trained on, or, if the data changed on purpose, train it again: remove the run directory, "
                          "or train into another --runs-dir")


def split_refs(cfg: Config, source) -> tuple[dict, str]:
    """This run's train / val / test refs and the validation rule; an empty split is an error naming the fix."""
    refs, rule = make_splits(source, cfg.train.seed, cfg.data.val_fraction, cfg.data.subset,
                             cfg.train.selection_split)
    for name in ("train", "val", "test"):
        if not refs.get(name) and not (name == "val" and cfg.train.selection_split == "last"):
            raise DataError(_empty_split_message(cfg, name, rule))
    return refs, rule


def _empty_split_message(cfg: Config, name: str, rule: str) -> str:
    fix = {"val": "use a larger --subset (video datasets: the first N frames are often one video), "
                  "data.val_fraction > 0, --set train.selection_split=last to keep the last epoch with no validation, "
                  "or --set train.selection_split=test to select on the test split knowingly",
           "train": "check --data-root and --subset", "test": "check --data-root and --subset"}[name]
    why = f"validation rule: {rule}; subset {cfg.data.subset}" if name == "val" else f"subset {cfg.data.subset}"
    return f"{cfg.data.dataset}: the {name} split is empty ({why}); {fix}"


def train_run(cfg: Config, run_dir: Path | None = None, progress: bool = True) -> Path:
    """Train, select and score one run into its directory (resuming from its checkpoint); a failure that leaves a
    run directory behind is recorded in its FAILED file, which the next attempt's success removes. A run another
    process is training raises records.RunBusy (its inputs are checked first)."""
    run_dir = Path(run_dir or records.run_dir_for(cfg))
    try:
        return _train_run(cfg, run_dir, progress)
    except Exception as exc:   # a Ctrl-C is an interruption, not a failure of the run
        # a failure of the inputs, before the lock (one after it is recorded under the lock): only into a run
        # directory no other process is training
        if not getattr(exc, "_recorded", False) and records.lock_holder(run_dir) is None:
            _record_failure(run_dir, exc)
        raise


def _check_done_samples(cfg: Config, run_dir: Path) -> None:
    """A finished run needs no data; when its data is there, it must be the data it was trained on (a finished run
    is never reported for another folder of the same name)."""
    if not cfg.data.root:
        return
    try:
        source = open_data(cfg.data)
    except (DataError, OSError, ValueError):
        return
    check_same_samples(cfg, run_dir, source)


def _record_failure(run_dir: Path, exc: Exception) -> None:
    # a conflict is about this config, not a failure of the run already in that directory, and a busy run belongs
    # to the process training it
    if run_dir.is_dir() and not records.is_done(run_dir) and not isinstance(exc, (RunConflict, records.RunBusy)):
        records.record_failure(run_dir, exc)


def _train_run(cfg: Config, run_dir: Path, progress: bool) -> Path:
    if records.is_done(run_dir):
        check_same_config(cfg, run_dir)
        _check_done_samples(cfg, run_dir)
        records.tidy_done(run_dir)
        return run_dir
    # a wrong data root or weights file fails before any file is written
    source = open_data(cfg.data)
    cfg = canonical_data(cfg, source)[0]   # e.g. --num-classes as the masks give it: the run made without it
    split_refs(cfg, source)   # an empty split too
    check_same_config(cfg, run_dir)   # a changed --subset or val_fraction is named as a setting, not as new files
    check_same_samples(cfg, run_dir, source)   # a checkpoint is resumed only on the samples it was trained on
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    amp = autocast_dtype(cfg)
    model = build_model(cfg, source.num_classes).to(device)
    compile_decoder(model, cfg)
    with records.run_lock(run_dir):   # one process per run directory (RunBusy names the one training it)
        if records.is_done(run_dir):   # finished by that process while this one was starting
            check_same_config(cfg, run_dir)
            check_same_samples(cfg, run_dir, source)
            records.tidy_done(run_dir)
            return run_dir
        try:
            _train_locked(cfg, run_dir, progress, source, model, device, amp)
        except Exception as exc:
            _record_failure(run_dir, exc)   # while the directory is still this process's
            try:
                exc._recorded = True
            except AttributeError:
                pass
            raise
        (run_dir / records.FAILED).unlink(missing_ok=True)
        return run_dir


def _train_locked(cfg: Config, run_dir: Path, progress: bool, source, model: Segmenter, device: torch.device,
                  amp: torch.dtype | None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    records.remove_stale_temps(run_dir)   # what a killed attempt was writing (this process holds the run)
    prepare_run_dir(cfg, run_dir)
    source, splits = load_data(cfg, run_dir, source)
    env = records.environment(str(device), cfg.backbone.weights, model.backbone.weights_sha256)
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)   # constant lr (REFERENCE.md §2)

    ckpt_path = run_dir / "checkpoint.pt"
    start_epoch, history, best, elapsed = 0, [], {"epoch": -1, "score": -1.0, "state": None}, 0.0
    extracted: set[str] = set()
    if ckpt_path.is_file():
        try:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError) as exc:   # truncated by a full disk or a partial copy
            raise DataError(f"checkpoint {ckpt_path} is unreadable ({records.first_line(exc) or type(exc).__name__}):"
                            f" remove it to restart this run from epoch 0, or run `segbench run`, which moves "
                            "damaged run directories aside") from None
        model.load_state_dict(ckpt["model"], strict=False)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        start_epoch, history, best, elapsed = ckpt["epoch"], ckpt["history"], ckpt["best"], ckpt["seconds"]
        env["started"] = ckpt["started"]
        extracted = set(ckpt.get("extracted", ()))   # features an earlier attempt extracted
        # a kill between the checkpoint and history.csv left the file an epoch short: the checkpoint has them all
        records.write_csv(run_dir / "history.csv", history)
    else:
        env["started"] = records.now()

    train, val = splits["train"], splits["val"]
    stores = feature_stores(cfg, model, splits, device, progress)
    batch = cfg.train.batch_size
    t0 = time.perf_counter() - elapsed
    last_save = time.perf_counter()
    label = f"{cfg.decoder.name} {cfg.data.dataset} s{cfg.train.seed}"
    bar = tqdm(range(start_epoch, cfg.train.epochs), desc=label, disable=bars_off(progress), unit="epoch",
               initial=start_epoch, total=cfg.train.epochs, leave=False)
    save_cost = 0.0

    def save(epoch: int) -> None:   # the checkpoint after `epoch` (0-based) of the loop below
        nonlocal last_save, save_cost
        started, interrupt.saved = time.perf_counter(), epoch + 1
        records.save_torch(ckpt_path, {
            "epoch": epoch + 1, "model": trainable_state(model), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": rng_state(), "history": history, "best": best,
            "seconds": started - t0, "started": env["started"],
            "extracted": sorted(extracted | {n for n, s in stores.items() if s.extracted})})
        last_save = time.perf_counter()
        save_cost = last_save - started
    with EpochBoundaryInterrupt(f"run {run_dir.name}", cfg.train.epochs) as interrupt:
        interrupt.saved = start_epoch
        for epoch in bar:
            interrupt.epoch = epoch + 1
            order = epoch_order(len(train), cfg.train.seed, epoch)
            losses = train_epoch(model, optimizer, train, batches(order, batch, cfg.train.drop_last), device, amp,
                                 stores.get("train"))
            scheduler.step()
            row = {"epoch": epoch + 1, "step": (epoch + 1) * len(losses), "train_loss": float(np.mean(losses))}
            if len(val):   # train.selection_split=last has no validation split: the last epoch is kept
                row["val_dice"], row["val_iou"] = validate(model, val, device, max(batch, 16), amp, stores.get("val"))
            if not np.isfinite(row["train_loss"]):   # before it reaches a checkpoint: the last one stays usable
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch + 1} (mean loss {row['train_loss']}): lower optim.lr (now "
                    f"{cfg.optim.lr})" + (f" or leave out train.amp_dtype (now {cfg.train.amp_dtype})"
                                          if cfg.train.amp_dtype else "")
                    + f", in a new run directory (or remove {run_dir}, whose checkpoint holds the epochs before)")
            history.append({**row, "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0})
            if not len(val) or row["val_dice"] > best["score"]:
                best = {"epoch": epoch + 1, "score": row.get("val_dice", -1.0),
                        "state": {k: v.detach().cpu().clone() for k, v in trainable_state(model).items()}}
            bar.set_postfix(loss=f"{row['train_loss']:.3f}",
                            **({"val_dice": f"{row['val_dice']:.3f}"} if len(val) else {}))
            due = checkpoint_due(time.perf_counter() - last_save, cfg.train.checkpoint_every_s, save_cost)
            if epoch == start_epoch or epoch + 1 == cfg.train.epochs or due or interrupt.requested:
                save(epoch)
            records.write_csv(run_dir / "history.csv", history)
            if interrupt.requested:   # also one that came during the writes above: the epoch is saved first
                if interrupt.saved != epoch + 1:
                    save(epoch)
                raise interrupt.stop()
    train_seconds = history[-1]["seconds"] if history else 0.0

    if best["state"] is not None:
        model.load_state_dict(best["state"], strict=False)
    env["feature_cache"] = {name: {"used": True, "extracted": s.extracted or name in extracted, "key": s.folder.name,
                                   "on_device": isinstance(s.taps, torch.Tensor)}
                            for name, s in stores.items()} or {"used": False}
    finish_run(cfg, run_dir, model, source, splits["test"], device, best["epoch"], train_seconds, env, progress)
    return run_dir


CHECKPOINT_SHARE = 0.02   # of the training time, at most, spent writing checkpoints between the first and last epoch


def checkpoint_due(since_last: float, every_s: float, cost: float) -> bool:
    """Whether a checkpoint is due `since_last` seconds after the last one, which took `cost` seconds to write:
    `train.checkpoint_every_s` apart, and further apart for a checkpoint slow to write (a DPT run's optimiser state
    makes a 457 MB file: 2.6-2.9 s every minute was ~4.5% of its training), so that writing takes at most
    CHECKPOINT_SHARE of the time (a preempted Slurm job then resumes up to ~2.3 minutes back for DPT instead of one);
    `checkpoint_every_s=0` checkpoints every epoch as asked. A Ctrl-C checkpoints the epoch whatever this says."""
    return since_last >= every_s and (every_s == 0 or since_last * CHECKPOINT_SHARE >= cost)


def batches(order: torch.Tensor, batch: int, drop_last: bool) -> list[np.ndarray]:
    """The epoch's mini-batches of sample positions (each sorted, so memory maps read in file order).

    A last batch of a single sample joins the one before it: BatchNorm (in smp's UNet, UPerNet and DPT decoders)
    cannot train on one sample, and every method sees the same batches, so the rule is the same for all of them."""
    stop = len(order) - len(order) % batch if drop_last and len(order) >= batch else len(order)
    starts = list(range(0, stop, batch))
    if len(starts) > 1 and stop - starts[-1] == 1:
        starts.pop()
    bounds = starts[1:] + [stop]
    return [np.sort(order[a:b].numpy()) for a, b in zip(starts, bounds)]


def train_epoch(model: Segmenter, optimizer, split: ResizedSplit, batch_list, device, amp, store=None) -> list[float]:
    """One pass of optimiser steps; returns the loss of each step. With a store resident in device memory the
    steps read features and masks there, by rows sent once per epoch: no step waits for the device."""
    model.train()
    losses = []
    rows = store.device_rows(batch_list) if store is not None and store.resident else [None] * len(batch_list)
    size = tuple(split.images.shape[1:3])
    for idx, on_device in zip(batch_list, rows):
        if on_device is not None:
            masks = store.masks[on_device]
        else:
            masks = torch.from_numpy(np.array(split.masks[idx])).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = (model.decode(store.rows_batch(on_device), size) if on_device is not None
                      else forward(model, split, idx, device, store))
            loss = loss_fn(logits.float(), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses).tolist() if losses else []   # one device sync per epoch, not one per step


def uses_feature_cache(cfg: Config) -> bool:
    """Cached features are exact only for a frozen backbone and un-augmented inputs (the paper's recipe)."""
    return cfg.train.feature_cache and cfg.train.freeze_backbone


def feature_stores(cfg: Config, model: Segmenter, splits: dict[str, ResizedSplit], device, progress: bool) -> dict:
    """Cached features for the train and val splits. The test split is always scored through the full model in
    float32, so `segbench evaluate` reproduces metrics.json exactly."""
    if not uses_feature_cache(cfg):
        return {}
    stores = {name: cached_features(split, model.backbone, cache_dir(cfg), device, max(cfg.train.batch_size, 16),
                                    progress, desc=f"features {cfg.data.dataset}/{name}")
              for name, split in splits.items() if name in ("train", "val") and len(split)}
    bases = {s.folder: (splits[n].base if splits[n].base is not None else splits[n]) for n, s in stores.items()}
    if features_on_device(cfg, device, stores, sum(b.masks.nbytes for b in bases.values())):
        resident = {}   # train and val are views of one official split: one copy in device memory serves both
        for name, store in stores.items():
            if store.folder not in resident:
                resident[store.folder] = store.on_device(device, bases[store.folder].masks)
            stores[name] = resident[store.folder].with_index(store.index)
    return stores


def features_on_device(cfg: Config, device: torch.device, stores: dict, mask_bytes: int = 0) -> bool:
    """Whether to hold the cached features (and the masks, `mask_bytes`) in accelerator memory (no host reads and
    copies per step): "yes", "no", or "auto" = on an accelerator when they take at most half of its free memory, and
    of this run's share of its memory when several runs share it (`--runs-per-gpu`: local workers set
    SEGBENCH_RUNS_ON_DEVICE), so runs that start together cannot all claim the same free memory."""
    choice = cfg.train.features_on_device
    choice = {True: "yes", False: "no"}.get(choice, choice) if isinstance(choice, bool) else choice   # YAML's yes/no
    if choice not in ("auto", "yes", "no"):
        raise ValueError(f"train.features_on_device must be auto, yes or no, not {choice!r}")
    if choice != "auto":
        return choice == "yes"
    if device.type != "cuda":
        return False
    need = sum(s.nbytes for s in {s.folder: s for s in stores.values()}.values()) + mask_bytes
    free, total = torch.cuda.mem_get_info(device)
    sharers = max(1, int(os.environ.get("SEGBENCH_RUNS_ON_DEVICE", "1")))
    return need <= min(free, total // sharers) // 2


def forward(model: Segmenter, split: ResizedSplit, idx: np.ndarray, device, store=None) -> torch.Tensor:
    """Logits for samples `idx`: from cached features when a store is given, else through the backbone. A frozen
    backbone runs in float32 even under `train.amp_dtype` autocast, as the cached features were extracted, so a run
    without the cache (or with augmentation) trains on the same features; autocast then covers the decoder."""
    size = tuple(split.images.shape[1:3])
    if store is not None:
        return model.decode(store.batch(idx, device), size)
    images = to_input(torch.from_numpy(np.array(split.images[idx])), device)
    if not model.freeze_backbone:
        return model(images)
    with torch.autocast(device.type, enabled=False):
        features = model.features(images)
    return model.decode(features, size)


def finish_run(cfg: Config, run_dir: Path, model: Segmenter, source, test: ResizedSplit, device,
               selected_epoch: int, train_seconds: float, env: dict, progress: bool = False) -> None:
    """Score the selected model on the test split under every profile and write the records, DONE last. The test
    split is predicted in float32 whatever `train.amp_dtype` says, as `segbench evaluate` predicts it, so the two
    always agree."""
    from benchmark.profiling import profile_record

    records.save_model(run_dir, model, source.num_classes)
    kept: dict[int, np.ndarray] = {}   # predictions are scored batch by batch; the report's samples are kept
    batches = predict_batches(model, test, device, max(cfg.train.batch_size, 16), None)
    write_scores(run_dir, cfg, keeping(batches, sample_indices(test, cfg.eval.n_samples), kept), test, source,
                 selected_epoch, train_seconds, progress=progress)
    save_samples(run_dir / "samples", test, kept, cfg.eval.n_samples)
    records.write_json(run_dir / "profile.json", profile_record(model, cfg))
    records.write_json(run_dir / "env.json", {**env, "finished": records.now()})
    records.mark_done(run_dir)
    # a finished run never resumes, and its optimiser state is most of the checkpoint's size (a DPT run's 457 MB
    # beside a 114 MB model.pt; the paper matrix would keep gigabytes): model.pt is what evaluate/predict load
    (run_dir / "checkpoint.pt").unlink(missing_ok=True)


def write_scores(run_dir: Path, cfg: Config, probs, test: ResizedSplit, source,
                 selected_epoch: int, train_seconds: float, merge: bool = False, progress: bool = False) -> dict:
    """metrics.json and per_image.csv for the profiles scored now; with `merge` (segbench evaluate) the profiles
    recorded before and not scored now are kept in both files."""
    scored = score_split(probs, test, source, profiles_for(cfg.data.dataset, cfg.eval.profiles), source.num_classes,
                         progress, cfg.train.num_workers)
    kept_profiles, kept_rows = {}, []
    if merge and (run_dir / "metrics.json").is_file():
        kept_profiles = {name: block for name, block in
                         json.loads((run_dir / "metrics.json").read_text()).get("profiles", {}).items()
                         if name not in scored}
        if (run_dir / "per_image.csv").is_file():
            with open(run_dir / "per_image.csv", newline="") as handle:
                kept_rows = [row for row in csv.DictReader(handle) if row["profile"] not in scored]
    metrics = {
        "schema": records.SCHEMA, "dataset": cfg.data.dataset, "method": cfg.decoder.name,
        "backbone": cfg.backbone.name, "preset": cfg.run.preset, "seed": cfg.train.seed,
        "selected_epoch": selected_epoch,
        "selection": {"split": cfg.train.selection_split, "profile": "segdino", "metric": "dice"},
        "train_seconds": train_seconds, "n_test": len(test),
        "profiles": {**kept_profiles, **{name: {"convention": _convention(name), **summary}
                                         for name, (summary, _) in scored.items()}},
    }
    records.write_json(run_dir / "metrics.json", metrics)
    rows = kept_rows + [{"profile": name, **row} for name, (_, rows) in scored.items() for row in rows]
    records.write_csv(run_dir / "per_image.csv", rows)
    return metrics


def _convention(name: str) -> dict:
    from benchmark.metrics import get_profile
    return get_profile(name).as_dict()
