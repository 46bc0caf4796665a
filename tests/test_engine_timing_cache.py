"""The shared timing cache file: concurrent read-merge-write under a lock loses nothing."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from gpen_video.engine.timing_cache import TimingCacheFile


def _add_entries(path: str, worker: int, count: int) -> None:
    cache = TimingCacheFile(path, timeout=60)
    for i in range(count):
        entry = f"w{worker}-{i}\n".encode()
        # a deliberately slow merge (read, think, write) to invite lost updates without a lock
        cache.update(lambda current, e=entry: _slow_union(current, e))


def _slow_union(current: bytes, entry: bytes) -> bytes:
    lines = set(current.splitlines(keepends=True))
    lines.add(entry)
    for _ in range(2000):  # busy work between the read and the write
        pass
    return b"".join(sorted(lines))


def test_concurrent_merges_keep_every_entry(tmp_path: Path):
    path = tmp_path / "timing.cache"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_add_entries, args=(str(path), w, 25)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    entries = path.read_bytes().splitlines()
    assert len(entries) == 4 * 25 == len(set(entries))
    # writes are atomic renames: no temporary files are left behind
    assert sorted(f.name for f in tmp_path.iterdir()) == ["timing.cache", "timing.cache.lock",
                                                          "timing.cache.sha256"]


def test_read_of_a_missing_cache_is_empty(tmp_path: Path):
    cache = TimingCacheFile(tmp_path / "none.cache")
    assert cache.read() == b""
    assert cache.update(lambda current: current + b"x") == b"x"
    assert cache.read() == b"x"
