"""First snapshots of a verified, unchanged payload: its content chunks copied unhashed under ids that
follow from the catalog's segment roots (files whose pieces are file-aligned), never verified again."""

import os
import time
from pathlib import Path

import pytest

import companion.scan
from companion.catalog import drift as drift_records
from companion.errors import StoreCorrupt
from companion.scan import FileStat, Scanner
from companion.store import SnapshotRefused
from companion.store.pack import PackWriter
from companion.store.trusted import RACY_FINE_NS, RACY_NS, racy_margin
from companion.torrent import load_torrent
from tests.helpers import flip_byte, make_torrent, payload_reads, write_payload
from tests.test_store import env, sha  # noqa: F401 - env is a fixture: the store on a small pack size

PIECE = 32768
LATER_NS = 10 * 10**9  # the verifying scan "began" this long after the files were written


def album(tmp_path: Path, kind: str = "hybrid") -> tuple:
    data = tmp_path / "data"
    write_payload(data / "album", {"01.flac": 9 * PIECE + 1234, "02.flac": 3 * PIECE, "cover.jpg": 5000,
                                   "empty.txt": b""})
    meta = load_torrent(make_torrent(data / "album", PIECE, kind, out=tmp_path / f"album.{kind}.torrent"))
    return meta, data


def catalog(cat, meta, data, monkeypatch, later_ns: int = LATER_NS):
    """A verifying full scan recorded as the baseline, as if it began `later_ns` after the writes."""
    real = time.time_ns
    monkeypatch.setattr(companion.scan.time, "time_ns", lambda: real() + later_ns)
    result = Scanner().full_scan(meta, data)
    monkeypatch.setattr(companion.scan.time, "time_ns", real)
    assert result.ok
    cat.record_scan(result, reason="test")
    return result


def reads(monkeypatch) -> list[str]:
    return payload_reads(monkeypatch)


def no_pack_files(root: Path) -> bool:
    return not [p for p in (root / "data").rglob("*") if p.is_file()]


@pytest.mark.parametrize("kind", ["v2", "hybrid"])
def test_verified_payload_is_stored_without_reading_it(env, monkeypatch, kind):
    tmp, cat, store = env
    meta, data = album(tmp, kind)
    catalog(cat, meta, data, monkeypatch)
    read = reads(monkeypatch)
    snap = store.snapshot(meta, data, "auto")
    assert read == []
    assert snap.trusted_bytes == snap.new_bytes == snap.bytes == meta.payload_size
    assert store.check(read_data=True).ok  # every stored chunk re-hashed: it is what its id says
    store.restore(snap.id, tmp / "out")
    for entry in meta.real_files:
        assert sha(tmp / "out" / entry.path) == sha(data / entry.path), entry.path
    files = {r["file_index"]: r for r in cat.query("SELECT * FROM snapshot_files WHERE snapshot_id = ?",
                                                     (snap.id,))}
    assert {i: r["sha256"] for i, r in files.items()} == \
        {r["file_index"]: r["sha256"] for r in cat.get_files(meta.id)}
    assert cat.one("SELECT trusted_bytes FROM snapshots WHERE id = ?", (snap.id,))[0] == meta.payload_size


def test_v1_torrents_have_no_chunk_ids_in_the_catalog_and_are_read(env, monkeypatch):
    tmp, cat, store = env
    meta, data = album(tmp, "v1")
    catalog(cat, meta, data, monkeypatch)
    read = reads(monkeypatch)
    snap = store.snapshot(meta, data, "auto")
    assert snap.trusted_bytes == 0 and set(read) == {"01.flac", "02.flac", "cover.jpg"}


def test_racy_margin_follows_the_timestamps_granularity():
    assert racy_margin(1_700_000_000_123_456_789) == RACY_FINE_NS
    assert racy_margin(1_700_000_000_000_000_000) == RACY_NS  # whole seconds: ext3, FAT, some NFS


def test_v1_chunk_ids_computed_by_the_verifying_scan_are_trusted(env, monkeypatch):
    tmp, cat, store = env
    meta, data = album(tmp, "v1")
    real = time.time_ns
    monkeypatch.setattr(companion.scan.time, "time_ns", lambda: real() + LATER_NS)
    result = Scanner().full_scan(meta, data, chunk_roots=True)  # as the protect job does under a snapshot policy
    monkeypatch.setattr(companion.scan.time, "time_ns", real)
    cat.record_scan(result, reason="test")
    read = reads(monkeypatch)
    snap = store.snapshot(meta, data, "auto")
    assert read == [] and snap.trusted_bytes == meta.payload_size
    assert store.check(read_data=True).ok


def test_racily_clean_files_are_read_again(env, monkeypatch):
    # written and verified within one timestamp tick: a later write in the same tick might not
    # have moved ctime, so the catalog's word is not taken (git's "racily clean")
    tmp, cat, store = env
    meta, data = album(tmp)
    catalog(cat, meta, data, monkeypatch, later_ns=0)
    read = reads(monkeypatch)
    snap = store.snapshot(meta, data, "auto")
    assert snap.trusted_bytes == 0 and set(read) == {"01.flac", "02.flac", "cover.jpg"}


def test_a_file_changed_since_verification_is_read_and_the_snapshot_refused(env, monkeypatch):
    tmp, cat, store = env
    meta, data = album(tmp)
    catalog(cat, meta, data, monkeypatch)
    path = data / "album" / "01.flac"
    st = path.stat()
    flip_byte(path, 5)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: only ctime tells
    read = reads(monkeypatch)
    with pytest.raises(SnapshotRefused, match="does not match its torrent"):
        store.snapshot(meta, data, "auto")
    assert set(read) == {"01.flac"}  # the unchanged files were trusted, this one was hashed
    assert store.snapshots() == [] and no_pack_files(tmp / "store")


def test_a_write_during_the_copy_refuses_the_snapshot(env, monkeypatch):
    tmp, cat, store = env
    meta, data = album(tmp)
    catalog(cat, meta, data, monkeypatch)
    real = PackWriter.copy
    done = []

    def copy_then_write(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        if not done:
            done.append(1)
            flip_byte(data / "album" / "01.flac", 7)
            flip_byte(data / "album" / "02.flac", 7)
        return out

    monkeypatch.setattr(PackWriter, "copy", copy_then_write)
    with pytest.raises(SnapshotRefused, match="changed"):
        store.snapshot(meta, data, "auto")
    assert store.snapshots() == [] and no_pack_files(tmp / "store")


def test_a_lying_catalog_is_caught_when_the_chunk_is_read(env, monkeypatch):
    # the store keeps bytes under ids derived from the catalog's segment roots, unhashed; every read
    # re-hashes, so a wrong id can never be restored or healed into a seed
    tmp, cat, store = env
    meta, data = album(tmp)
    catalog(cat, meta, data, monkeypatch)
    with cat.tx() as db:
        db.execute("UPDATE segments SET chunk_id = ? WHERE torrent_id = ? AND file_index = 0 AND piece = 0",
                   ("ab" * 32, meta.id))
    snap = store.snapshot(meta, data, "auto")
    assert snap.trusted_bytes == meta.payload_size
    (_o, _n, wrong), = store.file_content(snap.id, 0)  # 01.flac's one content chunk, id from the lie
    check = store.check(read_data=True)
    assert not check.ok and any(wrong in e and "does not match its id" in e for e in check.errors)
    with pytest.raises(StoreCorrupt, match=wrong):
        store.restore(snap.id, tmp / "out")
    with pytest.raises(StoreCorrupt, match="abab"):
        store.read_chunk("ab" * 32)  # the segment as the heal writer asks for it


def test_trust_is_dropped_when_the_stat_is_updated_without_a_full_scan(env, monkeypatch):
    tmp, cat, store = env
    meta, data = album(tmp)
    catalog(cat, meta, data, monkeypatch)
    path = data / "album" / "02.flac"
    index = next(e.index for e in meta.real_files if e.path.endswith("02.flac"))
    drift_records.update_file_stat(cat, meta.id, index, FileStat.of(path.stat()))  # e.g. after a false alarm
    read = reads(monkeypatch)
    snap = store.snapshot(meta, data, "auto")
    assert set(read) == {"02.flac"} and snap.trusted_bytes == meta.payload_size - path.stat().st_size


def test_trust_can_be_switched_off(env, monkeypatch):
    tmp, cat, store = env
    meta, data = album(tmp)
    catalog(cat, meta, data, monkeypatch)
    read = reads(monkeypatch)
    snap = store.snapshot(meta, data, "auto", trust_catalog=False)
    assert snap.trusted_bytes == 0 and set(read) == {"01.flac", "02.flac", "cover.jpg"}


def test_files_on_network_or_fuse_filesystems_are_hashed(env, monkeypatch, tmp_path):
    # another host may change an NFS or SMB file while this kernel's cached stat shows the old one
    import companion.store.trusted as trusted

    tmp, cat, store = env
    meta, data = album(tmp)
    catalog(cat, meta, data, monkeypatch)
    monkeypatch.setattr(trusted, "filesystem_type", lambda path: "nfs4")
    read = reads(monkeypatch)
    snap = store.snapshot(meta, data, "auto")
    assert snap.trusted_bytes == 0 and set(read) == {"01.flac", "02.flac", "cover.jpg"}


def test_filesystem_type_from_the_mount_table(tmp_path):
    from companion.store.trusted import filesystem_type

    st = os.stat(tmp_path)
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        f"30 1 {os.major(st.st_dev)}:{os.minor(st.st_dev)} / /srv/my\\040media rw - nfs4 nas:/media rw\n"
        "31 1 0:99 / / rw - ext4 /dev/vda rw\n")
    assert filesystem_type(tmp_path, str(table)) == "nfs4"  # by device number
    table.write_text("31 1 0:99 / / rw - ext4 /dev/vda rw\n40 31 0:98 / /nowhere rw - cifs //x/y rw\n")
    assert filesystem_type(tmp_path, str(table)) == "ext4"  # by the longest mount point above it


def test_scrub_reads_new_packs_then_the_least_recently_checked(env, monkeypatch):
    tmp, cat, store = env
    meta, data = album(tmp)
    catalog(cat, meta, data, monkeypatch)
    store.snapshot(meta, data, "auto")
    packs = len(store.index.packs())
    assert packs >= 2
    first = store.scrub_packs(0)
    assert first.ok and first.packs == packs and first.bytes_read == meta.payload_size  # every new pack, whatever the share
    assert store.scrub_packs(0).packs == 0
    some = store.scrub_packs(1)  # 1% of the store: the one least recently checked pack
    assert some.packs == 1
    rest = store.scrub_packs(100)
    assert rest.packs == packs
