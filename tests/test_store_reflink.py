"""Reflinks on a real XFS filesystem (a loop-mounted image): snapshots and restores clone instead
of copying, copy-on-write keeps the store intact when the payload changes, and a payload that
changes during a cloning snapshot is refused. Needs root, mkfs.xfs (xfsprogs) and loop devices."""

import os
import shutil
import subprocess
import uuid

import pytest

from companion.catalog import Catalog
from companion.store import SnapshotRefused, Store
from companion.torrent import load_torrent
from tests.helpers import flip_byte, make_torrent, write_payload

MiB = 2**20


@pytest.fixture
def xfs(tmp_path):
    if os.geteuid() != 0 or shutil.which("mkfs.xfs") is None:
        pytest.skip("needs root and mkfs.xfs (apt-get install xfsprogs) for a loop-mounted XFS")
    image, mnt = tmp_path / "xfs.img", tmp_path / f"xfs-{uuid.uuid4().hex[:8]}"
    with open(image, "wb") as fh:
        fh.truncate(320 * MiB)  # sparse; XFS wants at least 300 MB
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True, capture_output=True)
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount an XFS image here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def used(path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_snapshot_and_restore_clone_on_xfs(xfs, tmp_path):
    data = xfs / "data"
    write_payload(data / "disc", {"a.bin": 12 * MiB, "b.bin": 4 * MiB + 100}, seed=5)
    meta = load_torrent(make_torrent(data / "disc", 65536, "hybrid", out=tmp_path / "disc.torrent"))
    cat = Catalog(tmp_path / "catalog.sqlite")
    store = Store.open(xfs / "store", cat, pack_size=8 * MiB)
    os.sync()
    before = used(xfs)
    snap = store.snapshot(meta, data, "manual")
    os.sync()
    assert snap.new_bytes == meta.payload_size
    assert snap.cloned_bytes >= meta.payload_size - 65536  # all but b.bin's unaligned tail
    assert used(xfs) - before < 2 * MiB  # 16 MiB of chunks took (almost) no new space
    # copy-on-write: rewriting the payload in place leaves the stored chunks intact
    flip_byte(data / "disc" / "a.bin", 3 * 65536 + 7)
    assert store.check().ok
    damage_heal = store.heal(snap.id, data, [(meta.real_files[0].index, 3)])
    assert damage_heal.bytes == 65536
    restored = store.restore(snap.id, xfs / "out")
    assert restored.cloned_bytes > 12 * MiB
    for entry in meta.real_files:
        assert (xfs / "out" / entry.path).read_bytes() == (data / entry.path).read_bytes()
    cat.close()


def test_payload_changed_during_a_cloning_snapshot_is_refused(xfs, tmp_path, monkeypatch):
    data = xfs / "data"
    write_payload(data, {"a.bin": 2 * MiB}, seed=6)
    meta = load_torrent(make_torrent(data / "a.bin", 65536, "v2", out=tmp_path / "a.torrent"))
    cat = Catalog(tmp_path / "catalog.sqlite")
    store = Store.open(xfs / "store", cat)
    real = store.scanner.full_scan

    def scan_then_write(*args, **kwargs):
        result = real(*args, **kwargs)
        flip_byte(data / "a.bin", 100)  # after the hashing, before the store's check
        return result

    monkeypatch.setattr(store.scanner, "full_scan", scan_then_write)
    with pytest.raises(SnapshotRefused, match="changed while it was being snapshotted"):
        store.snapshot(meta, data, "manual")
    assert store.snapshots() == []
    assert not [p for p in (xfs / "store" / "data").rglob("*") if p.is_file()]
    cat.close()
