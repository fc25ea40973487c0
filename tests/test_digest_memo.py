"""The image cache's content key memoises file digests by stat: an unchanged file is not read again, an edited one
(even at the same size and mtime) is, a damaged memo is rebuilt, racy files are not memoised, and the key is the
one hashing every file gives (existing caches stay valid)."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from benchmark.data import image_cache
from benchmark.data.base import DatasetSource, SampleRef
from benchmark.data.folder import open_folder
from benchmark.data.image_cache import CONTENT_SCHEME, content_key, digest_memo_path, load_resized
from benchmark.data.synthetic import write_folder

LATER = 10 * 10**9   # hashing "10 s after the files were written": past the racy window


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The files content_key reads to hash them."""
    seen: list[str] = []
    real = image_cache._sha1_file

    def counting(path):
        seen.append(str(path))
        return real(path)

    monkeypatch.setattr(image_cache, "_sha1_file", counting)
    return seen


@pytest.fixture
def later(monkeypatch) -> None:
    """The memo's clock runs LATER ahead, so files written by the test are not racy."""
    monkeypatch.setattr(image_cache, "_now_ns", lambda: time.time_ns() + LATER)


def _dataset(root: Path, n: int = 3) -> tuple[DatasetSource, list[SampleRef]]:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    refs = []
    for i in range(n):
        image, mask = root / "images" / f"{i}.jpg", root / "masks" / f"{i}.png"
        image.write_bytes(bytes([i]) * 1000)
        mask.write_bytes(bytes([100 + i]) * 200)
        refs.append(SampleRef(str(i), image, mask))
    refs.append(SampleRef("lost", root / "images" / "lost.jpg", root / "masks" / "lost.png"))   # unreadable
    return DatasetSource("folder", root, {"train": refs}), refs


def _unmemoised_key(source: DatasetSource, refs: list[SampleRef], size: int) -> str:
    """content_key as it was before the memo (every file read and hashed), to show existing caches stay valid."""
    def digest(path):
        try:
            return hashlib.sha1(Path(path).read_bytes()).hexdigest()
        except OSError as exc:
            return f"unreadable:{type(exc).__name__}"

    h = hashlib.sha256(f"{CONTENT_SCHEME}|{source.name}|{source.mask_encoding}|{size}".encode())
    for ref in refs:
        h.update(f"|{ref.key}|{digest(ref.image)}|{digest(ref.mask)}".encode())
    return h.hexdigest()[:24]


def _wait_for_a_later_ctime(path: Path) -> None:
    """Until a write now stamps a later ctime than `path` has: file system clocks tick every few milliseconds, and
    within one tick a write keeps the stat (the racy case, which the test's moved clock switches off)."""
    probe = path.with_name(".probe")
    while True:
        probe.touch()
        os.utime(probe)
        if probe.stat().st_ctime_ns > path.stat().st_ctime_ns:
            probe.unlink()
            return
        time.sleep(0.001)


def test_unchanged_files_are_not_read_again(tmp_path, reads, later):
    source, refs = _dataset(tmp_path / "data")
    first = content_key(source, refs, 32, tmp_path / "cache")
    assert len(reads) == 6   # the lost pair's files cannot be read: not memoised, stat fails before any read
    reads.clear()
    assert content_key(source, refs, 32, tmp_path / "cache") == first
    assert reads == []
    assert digest_memo_path(tmp_path / "cache", source).parent == tmp_path / "cache" / "digests"


def test_load_resized_keys_an_unchanged_dataset_without_reading_it(tmp_path, reads, later):
    source = open_folder(write_folder(tmp_path / "data", 4, 2, seed=0))
    refs = source.splits["train"]
    first = load_resized(source, refs, 32, tmp_path / "cache")
    assert len(reads) == 2 * len(refs)
    reads.clear()
    assert load_resized(source, refs, 32, tmp_path / "cache").cache_key == first.cache_key
    assert reads == []


def test_an_edited_file_gets_a_new_key(tmp_path, reads, later):
    source, refs = _dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    first = content_key(source, refs, 32, cache)
    content_key(source, refs, 32, cache)
    reads.clear()
    # same size, mtime put back: only ctime (which a write sets and users cannot) and the bytes differ
    path = refs[1].image
    _wait_for_a_later_ctime(path)
    before = path.stat()
    path.write_bytes(b"\xff" * before.st_size)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    edited = content_key(source, refs, 32, cache)
    assert edited != first and edited == _unmemoised_key(source, refs, 32)
    assert reads == [os.path.realpath(path)]   # the memo held: only the edited file was read


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong shape", "bad entries", "a folder"])
def test_a_damaged_memo_is_ignored_and_rebuilt(tmp_path, reads, later, damage):
    source, refs = _dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    key = content_key(source, refs, 32, cache)
    memo = digest_memo_path(cache, source)
    text = memo.read_text()
    entries = {os.path.realpath(r.image): 7 if r.key == "0" else [1, "x"] for r in refs}
    if damage == "a folder":
        memo.unlink()
        memo.mkdir()
    else:
        memo.write_text({"garbage": "\x00\x9f not json", "truncated": text[:len(text) // 2],
                         "wrong shape": json.dumps([1, 2, 3]),
                         "bad entries": json.dumps({"scheme": 1, "files": entries})}[damage])
    reads.clear()
    assert content_key(source, refs, 32, cache) == key
    assert len(reads) == 6   # every file read again
    if damage != "a folder":   # rebuilt: the next run reads nothing
        reads.clear()
        assert content_key(source, refs, 32, cache) == key and reads == []


def test_racy_files_are_hashed_but_not_memoised(tmp_path, reads, monkeypatch):
    source, refs = _dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    key = content_key(source, refs, 32, cache)   # just written: within the racy window
    reads.clear()
    assert content_key(source, refs, 32, cache) == key and len(reads) == 6
    future = time.time_ns() + 3600 * 10**9      # a file stamped in the future (clock skew) is racy too
    os.utime(refs[0].mask, ns=(future, future))
    monkeypatch.setattr(image_cache, "_now_ns", lambda: time.time_ns() + LATER)
    reads.clear()
    assert content_key(source, refs, 32, cache) == key and len(reads) == 6
    reads.clear()
    assert content_key(source, refs, 32, cache) == key
    assert reads == [os.path.realpath(refs[0].mask)]   # the others are memoised once they are old enough


def test_the_key_is_the_unmemoised_one(tmp_path, reads, later):
    source, refs = _dataset(tmp_path / "data")
    expected = _unmemoised_key(source, refs, 32)
    assert content_key(source, refs, 32) == expected                       # no cache dir
    assert not (tmp_path / "cache").exists()
    assert content_key(source, refs, 32, tmp_path / "cache") == expected   # hashed, memoised
    reads.clear()
    assert content_key(source, refs, 32, tmp_path / "cache") == expected   # from the memo
    assert reads == []
    files = json.loads(digest_memo_path(tmp_path / "cache", source).read_text())["files"]
    assert len(files) == 6   # the unreadable pair is not memoised


def test_without_a_cache_dir_nothing_is_memoised(tmp_path, reads, later):
    source, refs = _dataset(tmp_path / "data")
    content_key(source, refs, 32)
    reads.clear()
    content_key(source, refs, 32, None)
    assert len(reads) == 8   # every file read again (the lost pair's tried too)
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]
