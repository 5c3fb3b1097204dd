"""The catalog: `seedward catalog add|show`, the SQLite store and the manifests repo's audit trail."""

import json
import sqlite3
import subprocess

import pytest

from companion.catalog import Catalog
from companion.catalog.schema import MIGRATIONS
from companion.errors import Ambiguous, NotFound
from companion.manifests import ManifestRepo
from companion.protect import catalog_torrent
from companion.torrent import load_torrent
from tests.helpers import seedward
from tests.scan_cases import KIB, NAME, UNICODE, build, damage, multi_layout, sha256sum


def git_log(home) -> list[str]:
    head = subprocess.run(["git", "-C", str(home / "manifests"), "rev-parse", "--verify", "-q", "HEAD"],
                          capture_output=True)
    if head.returncode != 0:
        return []  # a repo without commits yet
    out = subprocess.run(["git", "-C", str(home / "manifests"), "log", "--format=%B%x00"],
                         capture_output=True, text=True, check=True).stdout
    return [m.strip() for m in out.split("\x00") if m.strip()]


def test_add_then_show_by_prefix(tmp_path):
    home = tmp_path / "home"
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    meta = load_torrent(built.torrent)
    proc = seedward("catalog", "add", built.torrent, built.save, "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    added = json.loads(proc.stdout)
    assert added["id"] == meta.id == meta.info_hash_v2[:40] and added["ok"] is True

    for prefix in (meta.id[:6], meta.info_hash_v1[:7], meta.info_hash_v2.upper()[:8], meta.info_hash_v2):
        proc = seedward("catalog", "show", prefix, "--json", home=home)
        assert proc.returncode == 0, proc.stderr
        shown = json.loads(proc.stdout)
        assert shown["id"] == meta.id
    assert shown["protection"] == "protected"
    assert shown["kind"] == "hybrid" and shown["num_pieces"] == meta.num_pieces
    assert shown["save_path"] == str(built.save.resolve())
    assert {f["path"]: f["sha256"] for f in shown["files"]} == {
        p: sha256sum(built.save / p) for p in built.files}
    assert all(f["status"] == "ok" for f in shown["files"])
    assert len(shown["runs"]) == 1 and shown["runs"][0]["ok"] == 1
    # history, newest first: the protected event and the manifest commit it follows
    kinds = {h["kind"]: h["message"] for h in shown["history"]}
    assert kinds["manifest"].startswith(f"{NAME}: cataloged 7 files (manual)")
    assert kinds["protected"].startswith(f"{NAME}: verified against its torrent and cataloged")
    assert [h["at"] for h in shown["history"]] == sorted((h["at"] for h in shown["history"]), reverse=True)

    # The manifest is the human-readable record, committed to the repo.
    manifest = json.loads((home / "manifests" / "torrents" / f"{meta.id}.json").read_text())
    assert manifest["info_hash_v1"] == meta.info_hash_v1 and manifest["piece_size"] == 16 * KIB
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == {p: sha256sum(built.save / p) for p in built.files}
    assert (home / "torrents" / f"{meta.id}.torrent").read_bytes() == built.torrent.read_bytes()

    human = seedward("catalog", "show", meta.id[:6], home=home)
    assert human.returncode == 0 and "[protected]" in human.stdout and UNICODE in human.stdout


def test_segments_and_pieces_recorded(tmp_path):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "v1")
    meta = load_torrent(built.torrent)
    cat = Catalog(tmp_path / "catalog.sqlite")
    repo = ManifestRepo(tmp_path / "manifests")
    result = catalog_torrent(cat, repo, meta, built.save, reason="test")
    segs = cat.get_segments(meta.id)
    assert len(segs) == sum(len(f.segments) for f in result.files)
    assert all(s["xxh3"] and s["chunk_id"] is None for s in segs)  # v1: no chunk roots unless asked
    # Segments of each file tile it exactly.
    for f in meta.real_files:
        mine = [s for s in segs if s["file_index"] == f.index]
        assert sum(s["length"] for s in mine) == f.size
    pieces = cat.query("SELECT piece, ok FROM pieces WHERE torrent_id = ?", (meta.id,))
    assert len(pieces) == meta.num_pieces and all(p["ok"] == 1 for p in pieces)
    cat.close()


def test_damage_is_recorded_but_never_becomes_the_baseline(tmp_path):
    home = tmp_path / "home"
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    meta = load_torrent(built.torrent)
    victim = built.save / NAME / "CD1" / "a.flac"
    good = victim.read_bytes()

    expect = damage(built, "flip", f"{NAME}/CD1/a.flac")
    proc = seedward("catalog", "add", built.torrent, built.save, home=home)
    assert proc.returncode == 1
    shown = json.loads(seedward("catalog", "show", meta.id[:8], "--json", home=home).stdout)
    assert shown["protection"] == "baseline_bad" and shown["files"] == []
    assert json.loads(shown["runs"][0]["bad_pieces"]) == sorted(expect.bad)
    assert git_log(home) == []  # nothing verified, nothing committed

    victim.write_bytes(good)
    assert seedward("catalog", "add", built.torrent, built.save, home=home).returncode == 0
    assert seedward("catalog", "add", built.torrent, built.save, home=home).returncode == 0
    log = git_log(home)
    assert len(log) == 1, "an unchanged re-add makes no commit"
    assert log[0].startswith(f"{NAME}: cataloged 7 files (manual)") and meta.id in log[0]

    db = sqlite3.connect(home / "catalog.sqlite")
    baseline = db.execute("SELECT file_index, piece, xxh3 FROM segments ORDER BY 1, 2").fetchall()
    damage(built, "flip", f"{NAME}/CD1/a.flac")
    assert seedward("catalog", "add", built.torrent, built.save, home=home).returncode == 1
    shown = json.loads(seedward("catalog", "show", meta.id[:8], "--json", home=home).stdout)
    assert shown["protection"] == "damaged"
    assert db.execute("SELECT file_index, piece, xxh3 FROM segments ORDER BY 1, 2").fetchall() == baseline
    assert [r["ok"] for r in shown["runs"]] == [0, 1, 1, 0]


def test_payload_change_commits_what_and_why(tmp_path):
    home = tmp_path / "home"
    one = build(tmp_path / "one", multi_layout(16 * KIB), 16 * KIB, "v1", seed=1)
    two = build(tmp_path / "two", multi_layout(16 * KIB), 16 * KIB, "v2", seed=2)
    for b in (one, two):
        assert seedward("catalog", "add", b.torrent, b.save, home=home).returncode == 0
    log = git_log(home)
    assert len(log) == 2
    ids = {load_torrent(b.torrent).id for b in (one, two)}
    assert all(any(i in m for i in ids) for m in log)
    assert all("cataloged 7 files (manual)" in m for m in log)


def test_ambiguous_and_unknown_prefixes(tmp_path):
    (tmp_path / "home").mkdir()
    cat = Catalog(tmp_path / "home" / "catalog.sqlite")
    repo = ManifestRepo(tmp_path / "home" / "manifests")
    by_digit: dict[str, str] = {}
    seed = 0
    while True:  # at most 17 torrents until two ids share a first hex digit
        seed += 1
        built = build(tmp_path / str(seed), {f"{NAME}/x.bin": 1000 + seed}, 16 * KIB, "v1", seed=seed)
        meta = load_torrent(built.torrent)
        catalog_torrent(cat, repo, meta, built.save, reason="test")
        if meta.id[0] in by_digit:
            digit = meta.id[0]
            break
        by_digit[meta.id[0]] = meta.id
    with pytest.raises(Ambiguous):
        cat.resolve_id(digit)
    unused = next(d for d in "0123456789abcdef" if d not in by_digit and d != digit)
    with pytest.raises(NotFound):
        cat.resolve_id(unused * 5)
    cat.close()
    proc = seedward("catalog", "show", digit, home=tmp_path / "home")
    assert proc.returncode == 2 and "matches 2 torrents" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = seedward("catalog", "show", "zz", home=tmp_path / "home")
    assert proc.returncode == 2 and "hex digits" in proc.stderr
    proc = seedward("catalog", "show", unused * 5, home=tmp_path / "home")
    assert proc.returncode == 2 and "no torrent" in proc.stderr


def test_wal_and_versioned_migrations(tmp_path):
    path = tmp_path / "catalog.sqlite"
    Catalog(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    applied = [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert applied == sorted(MIGRATIONS) and 201 in applied
    db.close()
    # Reopening applies nothing twice.
    Catalog(path).close()
    db = sqlite3.connect(path)
    assert [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY version")] == applied


def test_add_with_bad_save_path_leaves_nothing(tmp_path):
    home = tmp_path / "home"
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    proc = seedward("catalog", "add", built.torrent, tmp_path / "nowhere", home=home)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert not list((home / "torrents").glob("*")) if (home / "torrents").exists() else True
    if (home / "catalog.sqlite").exists():
        with sqlite3.connect(home / "catalog.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM torrents").fetchone()[0] == 0
