"""The ladder with the real qbittorrent-nox: media edited by real taggers (resizing and in place)
healed back to 100 % in qBittorrent from zones and shifted bytes, with no snapshot and no swarm;
cross-seeds (the same files in a v1, a v2 and a hybrid torrent with different piece sizes, as
copies and as a hard link) healed from a sibling."""

import hashlib
import json
import os
import shutil

import pytest

from companion.catalog import Catalog
from companion.drift.detect import detect_drift
from companion.ladder.heal import heal_from_supply
from companion.ladder.sibling import holders
from companion.ladder.sources import supply_for
from companion.ladder.zones import keep_zones
from companion.locate import catalog_meta
from companion.store import Store
from tests import media
from tests.helpers import flip_byte, make_torrent, seedward, wait_until

pytestmark = [pytest.mark.qbt, pytest.mark.slow,
              pytest.mark.skipif(bool(media.missing_tools()), reason=f"needs {media.missing_tools()}")]


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def catalog_add(torrent, data, home) -> str:
    r = seedward("catalog", "add", torrent, data, "--json", home=home)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["id"]


def seeding(qbt, tid):
    t = dict(qbt.client.torrents_info(torrent_hashes=tid)[0])
    done = t["progress"] >= 1 and not t["state"].startswith("checking") and t["state"] in SEEDING
    return t if done else None


SEEDING = ("uploading", "stalledUP", "queuedUP", "forcedUP")


def heal_in_qbt(qbt, cat, store, tid, home):
    """What the drift response does, through the ladder: stop (every torrent on a shared inode
    too), heal, recheck, start."""
    qbt.client.torrents_stop(torrent_hashes=tid)
    found = detect_drift(cat, tid)
    assert not found.ok
    meta, save_path = catalog_meta(cat, tid)
    supply = supply_for(cat, store, meta, save_path, found.damages)
    assert supply.complete, supply.missing
    together = sorted({t for holders_ in supply.shared.values() for t, _i in holders_} | {tid})
    qbt.client.torrents_stop(torrent_hashes="|".join(together))
    heal_from_supply(meta, save_path, found.damages, supply, home / "quarantine")
    qbt.client.torrents_recheck(torrent_hashes="|".join(together))
    for t in together:  # the recheck ends before the torrent is started again
        wait_until(lambda t=t: (lambda i: i["progress"] >= 1 and not i["state"].startswith("checking"))(
            qbt.client.torrents_info(torrent_hashes=t)[0]), 60, 0.2, f"{t[:8]} rechecked at 100 %")
    qbt.client.torrents_start(torrent_hashes="|".join(together))

    def started(t):
        # A recheck qBittorrent had not begun yet when we looked (a loaded machine) ends with the
        # torrent paused again (it pauses after checking a paused torrent): start it once more.
        state = qbt.client.torrents_info(torrent_hashes=t)[0]["state"]
        if state in ("pausedUP", "stoppedUP"):
            qbt.client.torrents_start(torrent_hashes=t)
        return seeding(qbt, t)

    infos = [wait_until(lambda t=t: started(t), 60, 0.2, f"{t[:8]} seeding at 100 % in qBittorrent")
             for t in together]
    return supply, infos[together.index(tid)]


def test_taggers_resizing_headers_healed_to_100_percent_in_qbittorrent(qbt, tmp_path):
    from mutagen.flac import FLAC, Picture
    from mutagen.id3 import COMM, ID3

    data, home = tmp_path / "data", tmp_path / "home"
    album = data / "album"
    album.mkdir(parents=True)
    art = media.cover(tmp_path / "cover.jpg", 300)
    media.flac(album / "01.flac", 4, art)
    media.mp3(album / "02.mp3", 6, art)
    media.video(album / "ep.mkv", 3)
    good = {p.name: sha(p) for p in album.iterdir()}
    torrent = make_torrent(album, 32768, "hybrid", out=tmp_path / "album.torrent")
    tid = qbt.add_torrent(torrent, data)
    try:
        assert catalog_add(torrent, data, home) == tid
        cat = Catalog(home / "catalog.sqlite")
        store = Store.open(home / "store", cat)
        meta, save_path = catalog_meta(cat, tid)
        keep_zones(store, cat, meta, save_path)
        assert not store.snapshots(tid)  # no full snapshot: zones only

        f = FLAC(album / "01.flac")
        pic = Picture()
        pic.data, pic.type, pic.mime = media.cover(tmp_path / "big.jpg", 500, seed=3).read_bytes(), 3, "image/jpeg"
        f.clear_pictures()
        f.add_picture(pic)
        f.save()  # the header grows: every audio byte moves
        tags = ID3(album / "02.mp3")
        tags.add(COMM(encoding=3, lang="eng", desc="", text="x" * 4000))
        tags.save(v1=2)  # a bigger ID3v2 tag and an ID3v1 tag appended
        media.run("mkvpropedit", album / "ep.mkv", "--edit", "info", "--set", "title=Retitled")  # in place
        assert {p.name: sha(p) for p in album.iterdir()} != good

        supply, info = heal_in_qbt(qbt, cat, store, tid, home)
        assert {"shift", "zones"} <= set(supply.summary()) and "sibling" not in supply.summary()
        assert {p.name: sha(p) for p in album.iterdir()} == good
        assert info["progress"] == 1 and info["state"] in SEEDING
        cat.close()
    finally:
        qbt.client.torrents_delete(delete_files=False, torrent_hashes=tid)


def test_cross_seeds_in_three_torrents_heal_from_a_sibling(qbt, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    media.video(src / "movie.mkv", 4)
    media.flac(src / "song.flac", 3)
    home = tmp_path / "home"
    layouts = {"v1": ("a", 16384), "v2": ("b", 32768), "hybrid": ("c", 65536)}
    ids = {kind: None for kind in layouts}
    for where in ("a", "b", "c"):
        (tmp_path / where / "release").mkdir(parents=True)
    for f in src.iterdir():
        shutil.copy2(f, tmp_path / "a" / "release" / f.name)  # a copy
        shutil.copy2(f, tmp_path / "b" / "release" / f.name)  # a copy
        os.link(tmp_path / "b" / "release" / f.name, tmp_path / "c" / "release" / f.name)  # a hard link of b's
    good = {f.name: sha(f) for f in src.iterdir()}
    try:
        for kind, (where, piece) in layouts.items():
            torrent = make_torrent(tmp_path / where / "release", piece, kind, out=tmp_path / f"{kind}.torrent")
            ids[kind] = qbt.add_torrent(torrent, tmp_path / where)
            assert catalog_add(torrent, tmp_path / where, home) == ids[kind]
        cat = Catalog(home / "catalog.sqlite")
        store = Store.open(home / "store", cat)
        movie_v2 = tmp_path / "b" / "release" / "movie.mkv"
        index = next(e.index for e in catalog_meta(cat, ids["v2"])[0].real_files if e.path.endswith("movie.mkv"))
        assert sorted(t for t, _i in holders(cat, ids["v2"], index)) == sorted([ids["v2"], ids["hybrid"]])

        flip_byte(movie_v2, 100_000)  # damages the v2 and the hybrid torrent (one inode)
        flip_byte(movie_v2, 900_000)
        supply, info = heal_in_qbt(qbt, cat, store, ids["v2"], home)
        assert set(supply.summary()) == {"sibling"}  # from the v1 torrent's copy; no store at all
        assert sha(movie_v2) == good["movie.mkv"] and sha(tmp_path / "c" / "release" / "movie.mkv") == good["movie.mkv"]
        assert sorted(t for t, _i in supply.shared[index]) == sorted([ids["v2"], ids["hybrid"]])
        assert os.stat(movie_v2).st_ino == os.stat(tmp_path / "c" / "release" / "movie.mkv").st_ino  # healed once
        assert seeding(qbt, ids["hybrid"])

        flip_byte(tmp_path / "a" / "release" / "song.flac", 50_000)  # now the v1 copy, healed from the v2/hybrid inode
        supply, _info = heal_in_qbt(qbt, cat, store, ids["v1"], home)
        assert set(supply.summary()) == {"sibling"}
        assert {f.name: sha(f) for f in (tmp_path / "a" / "release").iterdir()} == good
        cat.close()
    finally:
        qbt.client.torrents_delete(delete_files=False, torrent_hashes="|".join(i for i in ids.values() if i))
