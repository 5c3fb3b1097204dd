"""`seedward qbt backup|restore` and `archive restore --into-qbittorrent` (issues 17 item 7, 19 item 4),
with real qbittorrent-nox processes: the state of one (categories, tags, save paths, torrent
options, renamed files, .torrent files) is backed up into the manifests repo and restored into an
empty second one; qBittorrent's hash check is skipped only for payloads seedward verified just
before adding them."""

import json
from pathlib import Path

import pytest

from companion.demo.private_qbt import QbtProcess
from tests.helpers import flip_byte, make_torrent, seedward, wait_until, write_payload

pytestmark = pytest.mark.slow

PASS = "correct horse battery staple"


def configure(home: Path, qbt, extra: str = "") -> None:
    home.mkdir(parents=True, exist_ok=True)
    secret = home.parent / f"{home.name}-webui-password"
    secret.write_text(qbt.password + "\n")
    secret.chmod(0o600)
    (home / "config.toml").write_text(f'[qbittorrent]\nurl = "{qbt.url}"\nusername = "{qbt.username}"\n'
                                      f'password_file = "{secret}"\n{extra}')


@pytest.fixture
def empty_qbt(tmp_path):
    """A second, empty qbittorrent-nox (a new machine's)."""
    proc = QbtProcess(tmp_path / "qbt-b")
    proc.start()
    yield proc
    proc.stop()


def info(qbt, h) -> dict:
    found = qbt.client.torrents_info(torrent_hashes=h)
    return dict(found[0]) if found else {}


def tags_of(t: dict) -> set[str]:
    return {x.strip() for x in t.get("tags", "").split(",") if x.strip()}


def seeded(qbt, tmp_path: Path) -> dict:
    """Three torrents in qBittorrent A with categories, tags, limits, a stopped one and a renamed file."""
    qbt.remove_all()
    data = tmp_path / "data"
    tv, music, books = data / "tv", data / "music", data / "books"
    c = qbt.client
    for name in list(c.torrents_categories()):
        c.torrents_remove_categories(categories=name)
    c.torrents_create_category(name="tv", save_path=str(tv))
    c.torrents_create_category(name="music", save_path="")
    c.torrents_create_tags(tags=["keep", "private", "unused-tag"])
    show = make_torrent(write_payload(tv / "show", {"e1.mkv": 90_000, "e2.mkv": 70_000}, seed=1),
                        out=tmp_path / "show.torrent")
    album = make_torrent(write_payload(music / "album", {"a.flac": 60_000}, seed=2), out=tmp_path / "album.torrent")
    book = make_torrent(write_payload(books / "book", {"b.epub": 50_000, "notes.txt": 9_000}, seed=3),
                        out=tmp_path / "book.torrent")
    ids = {
        "show": qbt.add_torrent(show, tv, category="tv", tags="keep", upload_limit=123_456, ratio_limit=2.5,
                                seeding_time_limit=600, is_sequential_download=True),
        "album": qbt.add_torrent(album, music, category="music", tags="private,keep"),
        "book": qbt.add_torrent(book, books),
    }
    c.torrents_stop(torrent_hashes=ids["album"])
    c.torrents_rename_file(torrent_hash=ids["book"], old_path="book/notes.txt", new_path="book/notes-renamed.txt")
    wait_until(lambda: (books / "book" / "notes-renamed.txt").is_file(), 30, what="qBittorrent renamed the file")
    wait_until(lambda: info(qbt, ids["album"])["state"] in ("pausedUP", "stoppedUP"), 30, what="album stopped")
    return {"ids": ids, "tv": tv, "music": music, "books": books}


def test_backup_then_restore_into_an_empty_qbittorrent(qbt, empty_qbt, tmp_path):
    world = seeded(qbt, tmp_path)
    ids = world["ids"]
    home = tmp_path / "home"
    configure(home, qbt)
    r = seedward("qbt", "backup", "--json", home=home)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["torrents"] == 3 and out["commit"] and "qbittorrent/state.json" in out["changed"]
    state = json.loads((home / "manifests" / "qbittorrent" / "state.json").read_text())
    assert state["categories"]["tv"]["save_path"] == str(world["tv"]) and "unused-tag" in state["tags"]
    doc = json.loads((home / "manifests" / "qbittorrent" / "torrents" / f"{ids['book']}.json").read_text())
    assert doc["renamed"] == {"book/notes.txt": "book/notes-renamed.txt"}
    r = seedward("qbt", "backup", "--json", home=home, check=True)
    assert json.loads(r.stdout)["changed"] == [] and json.loads(r.stdout)["commit"] is None  # nothing new

    # payload of the show damaged since the backup: qBittorrent must check it, not seedward skip it
    flip_byte(world["tv"] / "show" / "e2.mkv", 10)
    home_b = tmp_path / "home-b"
    configure(home_b, empty_qbt)
    source = home / "manifests"
    r = seedward("qbt", "restore", "--from", source, "--dry-run", "--json", home=home_b)
    assert r.returncode == 0, r.stderr
    dry = json.loads(r.stdout)
    assert sorted(dry["categories_created"]) == ["music", "tv"] and len(dry["added"]) == 3
    assert empty_qbt.client.torrents_info() == []  # a dry run changes nothing

    r = seedward("qbt", "restore", "--from", source, "--json", home=home_b)
    assert r.returncode == 0, r.stderr
    rep = {a["hash"]: a for a in json.loads(r.stdout)["added"]}
    assert rep[ids["album"]]["checked_by"] == "seedward"  # verified just before: no second check
    assert rep[ids["show"]]["checked_by"] == "qbittorrent"  # did not verify: qBittorrent checks it
    assert rep[ids["book"]]["checked_by"] == "qbittorrent"  # renamed files: qBittorrent checks
    b = empty_qbt.client
    cats = {k: dict(v) for k, v in b.torrents_categories().items()}
    assert cats["tv"]["savePath"] == str(world["tv"]) and "music" in cats
    assert {"keep", "private", "unused-tag"} <= set(b.torrents_tags())
    show, album, book = (info(empty_qbt, ids[k]) for k in ("show", "album", "book"))
    assert (show["category"], tags_of(show), show["save_path"].rstrip("/")) == ("tv", {"keep"}, str(world["tv"]))
    assert show["up_limit"] == 123_456 and show["ratio_limit"] == 2.5 and show["seeding_time_limit"] == 600
    assert show["seq_dl"] is True
    assert album["category"] == "music" and tags_of(album) == {"private", "keep"}
    album = wait_until(lambda: (lambda t: t if t["state"] in ("pausedUP", "stoppedUP") else None)(
        info(empty_qbt, ids["album"])), 30, what="album stopped and complete")
    assert album["progress"] == 1  # stopped, as it was, and complete without a check
    wait_until(lambda: info(empty_qbt, ids["book"])["progress"] == 1, 60, what="book rechecked complete")
    files = {f["name"] for f in b.torrents_files(torrent_hash=ids["book"])}
    assert files == {"book/b.epub", "book/notes-renamed.txt"}
    # the damaged show: qBittorrent's own check finds the bad piece
    wait_until(lambda: not info(empty_qbt, ids["show"])["state"].startswith("checking"), 60, what="show checked")
    assert info(empty_qbt, ids["show"])["progress"] < 1

    r = seedward("qbt", "restore", "--from", source, "--json", home=home_b, check=True)
    again = json.loads(r.stdout)
    assert again["added"] == [] and sorted(again["present"]) == sorted(ids.values())


def test_archive_restore_into_qbittorrent(qbt, empty_qbt, tmp_path):
    world = seeded(qbt, tmp_path)
    ids = world["ids"]
    home = tmp_path / "home"
    remote = tmp_path / "remote"
    configure(home, qbt, f'[archive]\nremote = "{remote}"\nvolume_kb = 64\n')
    (tmp_path / "pass").write_text(PASS + "\n")
    for name in ("show", "album"):
        seedward("catalog", "add", tmp_path / f"{name}.torrent", world["tv" if name == "show" else "music"],
                 home=home, check=True)
        seedward("snapshot", ids[name], home=home, check=True)
    seedward("qbt", "backup", home=home, check=True)
    r = seedward("archive", "create", "--tier", "weekly", "--passphrase-file", tmp_path / "pass", "--json", home=home)
    assert r.returncode == 0, r.stderr
    set_id = json.loads(r.stdout)["set_id"]

    # a new machine: empty qBittorrent, no state home
    home_b = tmp_path / "home-b"
    configure(home_b, empty_qbt)
    to = tmp_path / "restored"
    r = seedward("archive", "restore", set_id, "--remote", remote, "--to", to, "--passphrase-file", tmp_path / "pass",
                 "--into-qbittorrent", "--json", home=home_b)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    added = {a["hash"]: a for a in out["qbittorrent"]["added"]}
    assert set(added) == {ids["show"], ids["album"]}  # the book was never snapshotted: not in the set
    assert all(a["checked_by"] == "seedward" for a in added.values())
    for name in ("show", "album"):
        t = wait_until(lambda: (lambda t: t if t and not t["state"].startswith("checking") else None)(
            info(empty_qbt, ids[name])), 30, what=f"{name} added")
        assert t["save_path"].rstrip("/") == str(to / "payload" / ids[name])
        assert t["progress"] == 1  # re-added at the restored payload, complete
    show = info(empty_qbt, ids["show"])
    assert show["category"] == "tv" and tags_of(show) == {"keep"} and show["up_limit"] == 123_456
    album = wait_until(lambda: (lambda t: t if t["state"] in ("pausedUP", "stoppedUP") else None)(
        info(empty_qbt, ids["album"])), 30, what="album stopped")
    assert album["category"] == "music"
    assert not show["auto_tmm"]  # its category points elsewhere: nothing is moved


def test_a_torrent_qbittorrent_took_but_does_not_list_yet_is_waited_for(tmp_path, monkeypatch):
    """Found by a loaded run: qBittorrent answered the add with "Ok." and then said "no torrent" to
    the rename that followed (its list lacked the torrent for a while); the restore failed. The
    per-torrent calls now wait until qBittorrent lists it. The seam: qBittorrent's calls (a scripted
    one that lists the torrent only from its fourth look)."""
    import base64
    import hashlib

    from companion import qbtstate
    from companion.errors import Error

    from companion.torrent import load_torrent

    raw = make_torrent(write_payload(tmp_path / "data" / "book", {"b.epub": 20_000, "n.txt": 900}, seed=4)).read_bytes()

    h = load_torrent(raw).id
    doc = {"hash": h, "name": "book", "torrent": base64.b64encode(raw).decode(),
           "torrent_sha256": hashlib.sha256(raw).hexdigest(), "renamed": {"book/n.txt": "book/notes.txt"}}

    class Late:
        def __init__(self, listed_from: int):
            self.looks, self.listed_from, self.calls = 0, listed_from, []

        def add_torrent(self, *a, **k):
            self.calls.append("add")

        def torrent(self, tid):
            self.looks += 1
            return {"hash": tid} if self.looks >= self.listed_from else None

        def rename_path(self, tid, old, new):
            if self.looks < self.listed_from:
                raise Error(f"no torrent {tid}")  # what qBittorrent said
            self.calls.append(("rename", old, new))

        def recheck(self, tid):
            self.calls.append("recheck")

    qbt = Late(4)
    item = qbtstate._add(qbt, doc, str(tmp_path / "data"), {"categories": {}}, False, False)
    assert qbt.calls == ["add", ("rename", "book/n.txt", "book/notes.txt")] and qbt.looks == 4
    assert item["stopped"]  # (the renamed file is not on disk here: added stopped, nothing to check)
    monkeypatch.setattr(qbtstate, "ADDED_SECONDS", 0.3)
    with pytest.raises(Error, match="does not list it"):
        qbtstate._add(Late(10**9), doc, str(tmp_path / "data"), {"categories": {}}, False, False)
