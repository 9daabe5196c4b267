"""The local content-addressed store on a real file system."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchgate.adapters.artifact_store import LocalArtifactStore
from patchgate.domain.errors import TooLarge


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_bytes_are_hashed_while_streaming_and_stored_under_their_sha256(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    chunks = [b"a" * 1000, b"b" * 3000, b"", b"c"]
    blob = store.put_stream(iter(chunks), max_bytes=10_000)
    data = b"".join(chunks)
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert blob.sha1 == hashlib.sha1(data).hexdigest()  # noqa: S324
    assert blob.md5 == hashlib.md5(data).hexdigest()  # noqa: S324
    assert blob.size == len(data)
    path = store.local_path(blob.sha256)
    assert path is not None and path.read_bytes() == data
    assert b"".join(store.open(blob.sha256)) == data
    assert store.exists(blob.sha256)


def test_identical_content_is_kept_once(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    first = store.put_stream([b"same"], max_bytes=100)
    second = store.put_stream([b"sa", b"me"], max_bytes=100)
    assert first == second
    assert len(_files(tmp_path)) == 1


def test_a_stream_over_the_limit_leaves_nothing_behind(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    with pytest.raises(TooLarge):
        store.put_stream([b"x" * 60, b"x" * 60], max_bytes=100)
    assert _files(tmp_path) == []


def test_a_stream_that_breaks_off_leaves_nothing_behind(tmp_path: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield b"x" * 4096
        raise ConnectionResetError

    store = LocalArtifactStore(tmp_path)
    with pytest.raises(ConnectionResetError):
        store.put_stream(broken(), max_bytes=1 << 20)
    assert _files(tmp_path) == []


def test_temporary_files_left_by_a_crash_are_swept(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / ".incoming-crashed").write_bytes(b"partial")
    assert store.sweep_temporary() == 1
    assert _files(tmp_path) == []


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_blobs_lists_blobs_last_stored_before_the_age(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    old = store.put_stream([b"old"], max_bytes=100).sha256
    new = store.put_stream([b"new"], max_bytes=100).sha256
    path = store.local_path(old)
    assert path is not None
    _age(path, 3600)
    assert list(store.stale_blobs(1800)) == [old]
    assert sorted(store.stale_blobs(0)) == sorted([old, new])
    assert list(LocalArtifactStore(tmp_path / "empty").stale_blobs(0)) == []


def test_an_upload_of_stored_bytes_touches_the_blob_so_a_listed_blob_is_not_deleted(
    tmp_path: Path,
) -> None:
    store = LocalArtifactStore(tmp_path)
    sha256 = store.put_stream([b"same"], max_bytes=100).sha256
    path = store.local_path(sha256)
    assert path is not None
    _age(path, 3600)
    assert list(store.stale_blobs(1800)) == [sha256]
    # Between the sweep's listing and its deletion, another upload stores the same bytes.
    store.put_stream([b"same"], max_bytes=100)
    assert path.stat().st_mtime > time.time() - 60
    assert store.delete_if_stale(sha256, 1800) is False
    assert store.exists(sha256)
    _age(path, 3600)
    assert store.delete_if_stale(sha256, 1800) is True
    assert not store.exists(sha256)
    assert store.delete_if_stale(sha256, 1800) is False  # already gone
    assert _files(tmp_path) == []
