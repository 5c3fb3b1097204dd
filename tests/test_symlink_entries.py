"""BEP 47 symlink entries through the store: snapshot, restore (to a folder and in place), drill.

A link entry is restored as a link with the target the torrent says (never as bytes, never
followed), from the snapshot's record of it, or from the torrent itself for a snapshot taken
before snapshots recorded links; regular files come back byte-exact."""

import hashlib
import json
import os
import shutil

import libtorrent as lt
import pytest

from companion.catalog import Catalog
from companion.home import Home
from companion.store import Store
from companion.store.pack import pack_name
from companion.torrent import load_torrent
from tests.helpers import flip_byte, seedward, write_payload
from tests import test_ladder_fssnap

KIB = 1024
NAME = "linked"
FLAGS = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}
LINKS = {"link": "d/a.bin", "dirlink": "d", "d/sub/up": "../a.bin"}
FILES = {"d/a.bin": 50000, "d/sub/c.bin": 3000, "z.bin": 100}
btrfs = test_ladder_fssnap.btrfs  # the loop-mounted btrfs fixture (skipped without root and btrfs-progs)


def _setup(tmp_path, kind, save=None, config=""):
    save = save or tmp_path / "save"
    root = save / NAME
    write_payload(save, {f"{NAME}/{p}": n for p, n in FILES.items()})
    for link, target in LINKS.items():
        os.symlink(target, root / link)
    fs = lt.file_storage()
    lt.add_files(fs, str(root), flags=lt.create_torrent.symlinks)
    ct = lt.create_torrent(fs, 16 * KIB, FLAGS[kind] | lt.create_torrent.symlinks)
    lt.set_piece_hashes(ct, str(save))
    torrent = tmp_path / f"links.{kind}.torrent"
    torrent.write_bytes(lt.bencode(ct.generate()))
    home = tmp_path / "home"
    (home).mkdir()
    (home / "config.toml").write_text(f'[drill]\nscratch = "{tmp_path / "scratch"}"\ntimeout_seconds = 60.0\n{config}')
    r = seedward("catalog", "add", torrent, save, "--json", home=home)
    assert r.returncode == 0, r.stderr
    return home, save, json.loads(r.stdout)["id"]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_layout(root, originals):
    for link, target in LINKS.items():
        assert (root / link).is_symlink(), link
        assert os.readlink(root / link) == target, link
    for rel, digest in originals.items():
        assert not (root / rel).is_symlink() and _sha(root / rel) == digest, rel


def _sql(home, sql, params):
    """A change to the catalog made by hand (a record as an older seedward, or a tamperer, left it)."""
    with Catalog(Home(home).catalog_db).tx() as db:
        cur = db.execute(sql, params)
        return cur.rowcount, cur.fetchall()


def _restores_to(home, tid, out, originals, *more):
    r = seedward("restore", tid, *more, "--to", out, "--json", home=home)
    assert r.returncode == 0, r.stderr
    _assert_layout(out / NAME, originals)


def _snapshot(home, tid):
    r = seedward("snapshot", tid, "--json", home=home)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["snapshots"][0]["id"]


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_restore_to_a_folder_recreates_links(tmp_path, kind):
    home, save, tid = _setup(tmp_path, kind)
    originals = {p: _sha(save / NAME / p) for p in FILES}
    sid = _snapshot(home, tid)
    out = tmp_path / "out"
    _restores_to(home, tid, out, originals, "--snapshot", sid)
    # A restore over a folder holding a regular file where the link goes replaces it with the link.
    (out / NAME / "link").unlink()
    (out / NAME / "link").write_bytes(b"not a link")
    _restores_to(home, tid, out, originals)


def test_restore_in_place_recreates_a_deleted_or_replaced_link(tmp_path):
    home, save, tid = _setup(tmp_path, "hybrid")
    originals = {p: _sha(save / NAME / p) for p in FILES}
    _snapshot(home, tid)
    (save / NAME / "link").unlink()
    (save / NAME / "d" / "sub" / "up").unlink()
    shutil.copyfile(save / NAME / "z.bin", save / NAME / "d" / "sub" / "up")  # bytes where a link should be
    r = seedward("restore", tid, "--json", home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    _assert_layout(save / NAME, originals)
    assert seedward("check", tmp_path / "links.hybrid.torrent", save, home=home).returncode == 0


def test_snapshot_taken_before_links_were_recorded_restores_them_from_the_torrent(tmp_path):
    home, save, tid = _setup(tmp_path, "v2")
    originals = {p: _sha(save / NAME / p) for p in FILES}
    sid = _snapshot(home, tid)
    changed, _ = _sql(home, "UPDATE snapshot_files SET link = NULL WHERE snapshot_id = ? AND link IS NOT NULL", (sid,))
    assert changed == len(LINKS)  # as a snapshot taken before migration 1501 (link NULL)
    _restores_to(home, tid, tmp_path / "out", originals)


def test_a_link_target_escaping_the_destination_is_refused(tmp_path):
    home, save, tid = _setup(tmp_path, "v1")
    sid = _snapshot(home, tid)
    _sql(home, "UPDATE snapshot_files SET link = '../../etc/passwd' WHERE snapshot_id = ? AND path = ?",
         (sid, f"{NAME}/link"))  # a tampered record
    out = tmp_path / "out"
    r = seedward("restore", tid, "--to", out, home=home)
    assert r.returncode == 2 and "leaves the restore folder" in r.stderr, r.stderr
    assert not (out / NAME / "link").is_symlink() and not (out / NAME / "z.bin").exists()  # nothing written


@pytest.mark.parametrize("kind", ["v1", "hybrid"])
def test_drill_passes_with_links(tmp_path, kind):
    home, save, tid = _setup(tmp_path, kind)
    _snapshot(home, tid)
    r = seedward("drill", tid, "--json", home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    drill = json.loads(r.stdout)
    drill = drill["drills"][0] if "drills" in drill else drill
    assert drill["ok"] and drill["bad_files"] == [] and drill["bad_pieces"] == [], drill


def test_drill_fails_naming_a_link_restored_with_another_target(tmp_path):
    home, save, tid = _setup(tmp_path, "v1")
    sid = _snapshot(home, tid)
    _sql(home, "UPDATE snapshot_files SET link = 'z.bin' WHERE snapshot_id = ? AND path = ?",
         (sid, f"{NAME}/link"))  # a record that no longer says what the torrent does
    r = seedward("drill", tid, "--json", home=home)
    assert r.returncode != 0, r.stdout
    drill = json.loads(r.stdout)
    drill = drill["drills"][0] if "drills" in drill else drill
    assert not drill["ok"] and drill["bad_files"] == [f"{NAME}/link"], drill


def test_read_only_btrfs_snapshot_keeps_links(tmp_path, btrfs):
    home, save, tid = _setup(tmp_path, "hybrid", save=btrfs / "seeds", config='[store]\nfs_snapshots = "always"\n')
    originals = {p: _sha(save / NAME / p) for p in FILES}
    sid = _snapshot(home, tid)
    assert _sql(home, "SELECT layout FROM snapshots WHERE id = ?", (sid,))[1][0][0] == 3  # read-only btrfs
    r = seedward("check-store", "--json", home=home)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stdout + r.stderr
    _restores_to(home, tid, tmp_path / "out", originals)


def test_drill_of_a_corrupt_store_salvages_links_as_links(tmp_path):
    home, save, tid = _setup(tmp_path, "v1")
    sid = _snapshot(home, tid)
    cat = Catalog(Home(home).catalog_db)
    store = Store.open(Home(home).store, cat)
    meta = load_torrent(tmp_path / "links.v1.torrent")
    z = next(e for e in meta.real_files if e.path == f"{NAME}/z.bin")
    (_o, _n, cid), = store.file_content(sid, z.index)
    stored = store.index.get(cid)
    flip_byte(store.backend.local_path(pack_name(stored.pack)), stored.offset + 10)
    r = seedward("drill", tid, "--json", home=home)
    [drill] = json.loads(r.stdout)["drills"]
    assert r.returncode == 1 and "store corrupt" in drill["error"], r.stdout + r.stderr
    assert drill["bad_files"] == [z.path], drill  # the links came back as links: only z.bin is named
