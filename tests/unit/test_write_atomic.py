"""The one atomic file write the adapters share (keys, TUF metadata)."""

from __future__ import annotations

import stat
from pathlib import Path

from patchgate.adapters.keys import write_atomic


def test_write_atomic_replaces_the_file_with_the_mode_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    target = tmp_path / "sub" / "targets.key"
    write_atomic(target, b"first", mode=0o600)
    write_atomic(target, b"second", mode=0o600)
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    public = tmp_path / "sub" / "1.root.json"
    write_atomic(public, b"{}", mode=0o644)
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["1.root.json", "targets.key"]
