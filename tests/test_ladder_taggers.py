"""The ladder against real taggers on real media (ffmpeg-made FLAC/MP3 with cover art, MKV, MP4):
each edit, in place or resizing, is healed back to the torrent's bytes from zones and the drifted
file's own shifted bytes, without a full snapshot; a full remux is reported as needing more."""

import hashlib
import json
import os
import shutil

import pytest

from companion.catalog import Catalog
from companion.drift.detect import detect_drift
from companion.ladder.heal import heal_from_supply
from companion.ladder.sources import supply_for
from companion.ladder.zones import keep_zones
from companion.locate import catalog_meta
from companion.store import Store
from tests import media
from tests.helpers import make_torrent, seedward

pytestmark = pytest.mark.skipif(bool(media.missing_tools()), reason=f"needs {media.missing_tools()}")

PIECE = 32768


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    src = tmp_path_factory.mktemp("media")
    art = media.cover(src / "cover.jpg", 300)
    media.flac(src / "01.flac", 4, art)
    media.mp3(src / "02.mp3", 6, art)
    media.video(src / "ep.mkv", 3)
    media.video(src / "ep.mp4", 3)
    media.video(src / "fast.mp4", 3, faststart=True)
    big = media.cover(src / "big.jpg", 500, seed=2)
    return src, art, big


@pytest.fixture(params=["hybrid", "v1"])
def library(request, tmp_path, originals):
    src, art, big = originals
    data = tmp_path / "data"
    shutil.copytree(src, data / "album", ignore=shutil.ignore_patterns("*.jpg"))
    home = tmp_path / "home"
    torrent = make_torrent(data / "album", PIECE, request.param, out=tmp_path / "album.torrent")
    r = seedward("catalog", "add", torrent, data, "--json", home=home)
    assert r.returncode == 0, r.stderr
    tid = json.loads(r.stdout)["id"]
    cat = Catalog(home / "catalog.sqlite")
    store = Store.open(home / "store", cat)
    meta, save_path = catalog_meta(cat, tid)
    kept = keep_zones(store, cat, meta, save_path)
    assert kept.files == 5 and kept.new_bytes == kept.bytes > 0
    good = {p.name: sha(p) for p in (data / "album").iterdir()}
    yield cat, store, tid, data / "album", good, {"art": art, "big": big, "home": home, "tmp": tmp_path}
    cat.close()


def heal(cat, store, tid, extra):
    found = detect_drift(cat, tid)
    assert not found.ok, "the edit was not seen"
    meta, save_path = catalog_meta(cat, tid)
    supply = supply_for(cat, store, meta, save_path, found.damages)
    if not supply.complete:
        supply.discard()
        return found, supply, None
    kept, written = heal_from_supply(meta, save_path, found.damages, supply, extra["home"] / "quarantine")
    return found, supply, kept


def assert_healed(cat, tid, folder, good, supply, kept, kinds):
    assert supply.complete and kept is not None
    assert {p.name: sha(p) for p in folder.iterdir() if not p.name.startswith(".")} == good
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no staged file left
    assert detect_drift(cat, tid).ok
    assert set(supply.summary()) <= kinds
    drift = json.loads((kept.folder / "drift.json").read_text())
    assert drift["files"]  # the drifted bytes are kept


def test_mutagen_flac_tag_in_place(library):
    from mutagen.flac import FLAC

    cat, store, tid, folder, good, extra = library
    f = FLAC(folder / "01.flac")
    f["comment"] = "ripped again"  # fits the padding: the tagger writes in place
    f.save()
    found, supply, kept = heal(cat, store, tid, extra)
    assert_healed(cat, tid, folder, good, supply, kept, {"zones", "sibling"})


def test_mutagen_flac_bigger_cover_resizes_the_header(library):
    from mutagen.flac import FLAC, Picture

    cat, store, tid, folder, good, extra = library
    before = (folder / "01.flac").stat().st_size
    f = FLAC(folder / "01.flac")
    pic = Picture()
    pic.data = extra["big"].read_bytes()
    pic.type, pic.mime = 3, "image/jpeg"
    f.clear_pictures()
    f.add_picture(pic)
    f.save()
    assert (folder / "01.flac").stat().st_size > before
    found, supply, kept = heal(cat, store, tid, extra)
    assert "shift" in supply.summary() and "zones" in supply.summary()
    assert_healed(cat, tid, folder, good, supply, kept, {"zones", "shift", "intact"})
    assert any(r.get("kept", "").startswith("whole file") and "copy" not in r["kept"]  # moved or kept as is, not copied
               for r in json.loads((kept.folder / "drift.json").read_text())["files"])


def test_metaflac_removes_the_picture(library):
    cat, store, tid, folder, good, extra = library
    media.run("metaflac", "--remove", "--block-type=PICTURE", "--dont-use-padding", folder / "01.flac")
    found, supply, kept = heal(cat, store, tid, extra)
    assert_healed(cat, tid, folder, good, supply, kept, {"zones", "shift", "intact"})


def test_mutagen_id3_more_tags_and_an_id3v1_tail(library):
    from mutagen.id3 import COMM, ID3, TXXX

    cat, store, tid, folder, good, extra = library
    tags = ID3(folder / "02.mp3")
    tags.add(COMM(encoding=3, lang="eng", desc="", text="x" * 5000))
    tags.add(TXXX(encoding=3, desc="MusicBrainz Album Id", text="0" * 36))
    tags.save(v1=2)  # bigger than the padding (the file grows at the head) and an ID3v1 tag appended
    found, supply, kept = heal(cat, store, tid, extra)
    assert_healed(cat, tid, folder, good, supply, kept, {"zones", "shift", "intact"})


def test_id3v2_tool_retags(library):
    cat, store, tid, folder, good, extra = library
    media.run("id3v2", "--song", "A much longer title than before", "--album", "Album", folder / "02.mp3")
    found, supply, kept = heal(cat, store, tid, extra)
    assert_healed(cat, tid, folder, good, supply, kept, {"zones", "shift", "intact"})


def test_eyed3_removes_every_tag(library):
    cat, store, tid, folder, good, extra = library
    media.run("eyeD3", "--remove-all", folder / "02.mp3")
    found, supply, kept = heal(cat, store, tid, extra)
    assert_healed(cat, tid, folder, good, supply, kept, {"zones", "shift", "intact"})


def test_mkvpropedit_title_in_place_and_tags_growing(library):
    cat, store, tid, folder, good, extra = library
    media.run("mkvpropedit", folder / "ep.mkv", "--edit", "info", "--set", "title=Edited")
    found, supply, kept = heal(cat, store, tid, extra)
    assert_healed(cat, tid, folder, good, supply, kept, {"zones", "shift", "intact"})
    xml = extra["tmp"] / "tags.xml"
    xml.write_text("<Tags><Tag><Simple><Name>COMMENT</Name><String>" + "y" * 20000
                   + "</String></Simple></Tag></Tags>")
    media.run("mkvpropedit", folder / "ep.mkv", "--tags", f"global:{xml}")
    found, supply, kept = heal(cat, store, tid, extra)
    assert_healed(cat, tid, folder, good, supply, kept, {"zones", "shift", "intact"})


@pytest.mark.parametrize("name", ["ep.mp4", "fast.mp4"])
def test_mutagen_mp4_tags(library, name):
    from mutagen.mp4 import MP4

    cat, store, tid, folder, good, extra = library
    f = MP4(folder / name)
    f["\xa9cmt"] = ["z" * 3000]
    f["\xa9nam"] = ["Retitled"]
    f.save()
    found, supply, kept = heal(cat, store, tid, extra)
    assert_healed(cat, tid, folder, good, supply, kept, {"zones", "shift", "intact"})


def test_a_full_remux_needs_a_full_snapshot_or_the_swarm(library):
    cat, store, tid, folder, good, extra = library
    remux = extra["tmp"] / "remux.mkv"
    media.ffmpeg("-i", folder / "ep.mkv", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-c:a", "copy",
                 remux)
    shutil.move(remux, folder / "ep.mkv")
    found, supply, kept = heal(cat, store, tid, extra)
    assert kept is None and not supply.complete
    index = next(e.index for e in found.meta.real_files if e.path.endswith("ep.mkv"))
    assert supply.missing[index]  # the pieces no cheap tier holds
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_an_appended_id3v1_tag_is_cut_without_rewriting_the_file(library):
    # id3v2 -1 writes an ID3v1 tag only: 128 bytes appended, nothing moved
    cat, store, tid, folder, good, extra = library
    path = folder / "02.mp3"
    ino, size = path.stat().st_ino, path.stat().st_size
    media.run("id3v2", "-1", "--song", "Appended", path)
    assert path.stat().st_size == size + 128
    found, supply, kept = heal(cat, store, tid, extra)
    assert supply.complete and not supply.rebuilt and supply.summary() == {}  # no byte needed from any tier
    assert_healed(cat, tid, folder, good, supply, kept, set())
    assert path.stat().st_ino == ino  # cut in place, the file was not rewritten
    [record] = json.loads((kept.folder / "drift.json").read_text())["files"]
    assert record["kind"] == "extended" and record["ranges"][-1]["length"] == 128  # the tag, kept


def test_a_file_rewritten_at_the_same_size_heals_only_its_changed_pieces(library):
    cat, store, tid, folder, good, extra = library
    path = folder / "ep.mkv"
    data = bytearray(path.read_bytes())
    data[40:48] = b"RETAGGED"  # a tool writing a new file and renaming it over: same size, another inode
    tmp = folder / ".ep.mkv.tmp"
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)
    found, supply, kept = heal(cat, store, tid, extra)
    dmg = next(d for d in found.damages if d.entry.path.endswith("ep.mkv"))
    assert dmg.drift.kind == "replaced" and not supply.rebuilt
    assert set(supply.summary()) == {"zones"} and len(supply.chunk_ids) == len(dmg.drift.pieces) == 1
    assert_healed(cat, tid, folder, good, supply, kept, {"zones"})
