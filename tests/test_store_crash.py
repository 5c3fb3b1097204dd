"""kill -9 in the middle of a snapshot: the store and catalog never claim data the store lacks."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from companion.catalog import Catalog
from companion.store import Store
from companion.torrent import load_torrent
from tests.helpers import make_torrent, wait_until, write_payload

# The child parks at a chosen point of the write sequence and says so; the test then kills it.
CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import companion.catalog.snapshots as records
    import companion.store.index as index_mod
    from companion.catalog import Catalog
    from companion.store import Store
    from companion.store.pack import PackWriter
    from companion.torrent import load_torrent

    tmp, point = Path(sys.argv[1]), sys.argv[2]

    def park_after(obj, name, count):
        real = getattr(obj, name)
        calls = []
        def wrapper(*args, **kwargs):
            out = real(*args, **kwargs)
            calls.append(1)
            if len(calls) == count:
                (tmp / "parked").write_text(point)
                time.sleep(600)
            return out
        setattr(obj, name, wrapper)

    if point == "packs":  # two packs published, the rest not yet
        park_after(PackWriter, "_publish", 2)
    elif point == "index":  # packs and index written, no snapshot tree or record
        park_after(index_mod.Index, "write", 1)
    elif point == "tree":  # everything but the catalog record
        real = records.add_snapshot
        def parked(*args, **kwargs):
            (tmp / "parked").write_text(point)
            time.sleep(600)
        records.add_snapshot = parked
    cat = Catalog(tmp / "catalog.sqlite")
    store = Store.open(tmp / "store", cat, pack_size=64 * 1024)
    store.snapshot(load_torrent(tmp / "big.torrent"), tmp / "data", "manual")
""")


@pytest.mark.parametrize("point", ["packs", "index", "tree"])
def test_kill_9_mid_snapshot(tmp_path, point):
    data = tmp_path / "data"
    write_payload(data / "big", {"a.bin": 600_000, "b.bin": 300_000}, seed=3)
    meta = load_torrent(make_torrent(data / "big", 16384, "hybrid", out=tmp_path / "big.torrent"))
    # an earlier good snapshot of another torrent must survive untouched
    write_payload(data / "old", {"x.bin": 100_000}, seed=4)
    old_meta = load_torrent(make_torrent(data / "old", 16384, "v1", out=tmp_path / "old.torrent"))
    cat = Catalog(tmp_path / "catalog.sqlite")
    Store.open(tmp_path / "store", cat, pack_size=64 * 1024).snapshot(old_meta, data, "manual")
    cat.close()

    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), point], cwd=root,
                             env=dict(os.environ, PYTHONPATH=str(root)))
    try:
        wait_until(lambda: (tmp_path / "parked").exists() or child.poll() is not None, timeout=60,
                   what="the snapshot to reach its crash point")
        assert child.poll() is None, "the child ended before its crash point"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()

    cat = Catalog(tmp_path / "catalog.sqlite")
    store = Store.open(tmp_path / "store", cat, pack_size=64 * 1024, lock_timeout=5)  # the lock died with it
    assert [s.torrent_id for s in store.snapshots()] == [old_meta.id]
    report = store.check()
    assert report.ok, report.errors
    pruned = store.prune()
    if point == "packs":  # published packs nothing names are removed
        assert report.unreferenced_packs and pruned.packs_deleted == len(report.unreferenced_packs)
    if point == "tree":  # the tree whose record never came
        assert pruned.trees_deleted == 1
    assert store.check().ok
    on_disk = {p.name for p in (tmp_path / "store" / "data").rglob("*") if p.is_file()}
    assert on_disk == set(store.index.packs())
    leftovers = [p for p in (tmp_path / "store").rglob("*") if p.is_file() and p.parent.name == "tmp"]
    assert leftovers == []
    # the store works on: the killed snapshot can be taken again and restored
    snap = store.snapshot(meta, data, "manual")
    store.restore(snap.id, tmp_path / "out")
    for entry in meta.real_files:
        assert (tmp_path / "out" / entry.path).read_bytes() == (data / entry.path).read_bytes()
    store.restore(store.snapshots(old_meta.id)[0].id, tmp_path / "out")
    assert (tmp_path / "out" / "old" / "x.bin").read_bytes() == (data / "old" / "x.bin").read_bytes()
    assert store.check().ok
    cat.close()
