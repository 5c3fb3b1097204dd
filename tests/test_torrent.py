"""load_torrent: libtorrent-parsed metadata and placement, qBittorrent's id, the safety rules and
the limits on reading a .torrent."""

import os
import socket
import stat
import threading

import libtorrent as lt
import pytest

from companion.errors import BadInput, BadTorrent, UnsafePath
from companion.torrent import MAX_TORRENT_BYTES, lexically_relative, load_torrent
from tests.helpers import make_torrent, write_payload
from tests.scan_cases import INDEPENDENT, KIB, NAME, build, creator_kind, multi_layout, retitle


@pytest.mark.parametrize("creator", ["v1", "v2", "hybrid", *INDEPENDENT])
def test_fields_match_libtorrent(tmp_path, creator):
    built = build(tmp_path, multi_layout(32 * KIB), 32 * KIB, creator)
    meta = load_torrent(built.torrent)
    ti = lt.torrent_info(str(built.torrent))
    ih = ti.info_hashes()
    assert meta.kind == creator_kind(creator)
    assert meta.info_hash_v1 == (str(ih.v1) if ih.has_v1() else None)
    assert meta.info_hash_v2 == (str(ih.v2) if ih.has_v2() else None)
    assert meta.id == (str(ih.v2)[:40] if ih.has_v2() else str(ih.v1))
    assert meta.name == NAME and meta.piece_length == 32 * KIB and meta.num_pieces == ti.num_pieces()
    assert meta.raw == built.torrent.read_bytes()
    assert {f.path: f.size for f in meta.real_files} == built.files
    assert meta.payload_size == sum(built.files.values())
    assert meta.total_size == ti.total_size()
    assert sum(f.size for f in meta.files) == meta.total_size
    for f in meta.files:
        assert f.offset == ti.layout().file_offset(f.index)
        assert f.pad == bool(ti.layout().file_flags(f.index) & lt.file_storage.flag_pad_file)
    if meta.has_v1:
        assert list(meta.v1_hashes) == [bytes(ti.hash_for_piece(p)) for p in range(ti.num_pieces())]
    else:
        assert meta.v1_hashes is None
    if meta.has_v2:
        big = next(f for f in meta.real_files if f.size > 32 * KIB)
        assert len(meta.v2_piece_hashes(big)) == len(meta.file_pieces(big))
        assert all(f.root == ti.layout().root(f.index).to_bytes() for f in meta.real_files if f.size)
    else:
        assert all(f.root is None for f in meta.files)


def test_from_bytes(tmp_path):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    assert load_torrent(built.torrent.read_bytes()) == load_torrent(built.torrent)


@pytest.mark.parametrize("raw", [b"", b"garbage", b"d4:infoi1ee"[:5]])
def test_bad_bytes(raw):
    with pytest.raises(BadTorrent, match="not a valid torrent"):
        load_torrent(raw, source="x.torrent")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(BadInput, match="nope.torrent: no such .torrent file"):
        load_torrent(tmp_path / "nope.torrent")


# -- placement: libtorrent's renames, BEP 47 symlinks ---------------------------------------------

def _lt_paths(raw: bytes) -> list[str]:
    """Where libtorrent itself puts every file (its file storage with its renames applied)."""
    atp = lt.load_torrent_buffer(raw)
    fs = atp.ti.layout()
    return [atp.renamed_files.get(i, fs.file_path(i)) for i in range(fs.num_files())]


def test_duplicate_paths_are_placed_as_libtorrent_renames_them(tmp_path):
    write_payload(tmp_path, {f"{NAME}/A/x1": 40000, f"{NAME}/A/x2": 30000, f"{NAME}/b": 10})
    raw = retitle(make_torrent(tmp_path / NAME, 16 * KIB, "v1").read_bytes(),
                  {("A", "x2"): ("A", "x1"), ("b",): ("a",)})
    meta = load_torrent(raw)
    paths = [f.path for f in meta.files]
    assert paths == _lt_paths(raw)
    # Two files named A/x1 (the second becomes A/x1.1) and a file `a` next to the folder `A`.
    assert paths == [f"{NAME}/A/x1", f"{NAME}/A/x1.1", f"{NAME}/a.1"]


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_file_named_like_a_folder_but_for_case(tmp_path, kind):
    write_payload(tmp_path, {f"{NAME}/A/x": 40000, f"{NAME}/B": 100})
    raw = retitle(make_torrent(tmp_path / NAME, 16 * KIB, kind).read_bytes(), {("B",): ("a",)})
    meta = load_torrent(raw)
    assert [f.path for f in meta.real_files] == [f"{NAME}/A/x", f"{NAME}/a.1"]
    assert [f.path for f in meta.files] == _lt_paths(raw)


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_symlink_entries(tmp_path, kind):
    root = tmp_path / NAME
    write_payload(tmp_path, {f"{NAME}/d/a.bin": 50000, f"{NAME}/d/deeper/c.bin": 20})
    os.symlink("d/a.bin", root / "link")
    os.symlink("d", root / "dirlink")
    os.symlink("../a.bin", root / "d" / "deeper" / "up")
    fs = lt.file_storage()
    lt.add_files(fs, str(root), flags=lt.create_torrent.symlinks)
    ct = lt.create_torrent(fs, 16 * KIB, {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only,
                                          "hybrid": 0}[kind] | lt.create_torrent.symlinks)
    lt.set_piece_hashes(ct, str(tmp_path))
    meta = load_torrent(lt.bencode(ct.generate()))
    links = {f.path: (f.symlink, f.link_target, f.size) for f in meta.files if f.symlink}
    assert links == {
        f"{NAME}/link": (f"{NAME}/d/a.bin", "d/a.bin", 0),
        f"{NAME}/dirlink": (f"{NAME}/d", "d", 0),
        f"{NAME}/d/deeper/up": (f"{NAME}/d/a.bin", "../a.bin", 0),
    }
    assert all(f.symlink is None for f in meta.files if f.path.endswith(".bin"))


@pytest.mark.parametrize("base,target,want", [
    ("T", "T/d/a", "d/a"), ("T/d/e", "T/d/a", "../a"), ("T/x/y", "T/a/b", "../../a/b"),
    ("", "T/a", "T/a"), ("T/", "T/a", "a"), ("T", "T/link", "link"),
])
def test_lexically_relative_is_libtorrents(base, target, want):
    assert lexically_relative(base, target) == want


# -- the safety rules ---------------------------------------------------------------------------

def _v1_info(path, name=b"A", **extra):
    info = {b"name": name, b"piece length": 16384, b"pieces": b"\0" * 20, b"files": [{b"length": 3, b"path": path}]}
    info.update(extra)
    return lt.bencode({b"info": info})


@pytest.mark.parametrize("path", [[b".."], [b"a", b"..", b"b"], [b"a\\..\\b"], [b"a/../../b"], [b"..", b"etc"]])
def test_traversal_is_refused_naming_the_rule(path):
    with pytest.raises(UnsafePath) as err:
        load_torrent(_v1_info(path), source="evil.torrent")
    message = str(err.value)
    assert message.startswith("evil.torrent: unsafe path in torrent or payload: traversal rule: file 0 path ")
    shown = repr([p.decode() for p in path])
    assert shown in message and "'A/" not in message  # the elements as the torrent gives them, not joined


@pytest.mark.parametrize("key", [b"name", b"name.utf-8"])
def test_traversal_in_either_name_spelling(key):
    info = {b"piece length": 16384, b"pieces": b"\0" * 20, b"files": [{b"length": 3, b"path": [b"x"]}], key: b".."}
    with pytest.raises(UnsafePath, match=f"traversal rule: torrent {key.decode()} \\['..'\\]"):
        load_torrent(lt.bencode({b"info": info}), source="evil.torrent")


def test_name_libtorrent_reads_is_the_one_checked():
    """libtorrent reads name.utf-8 over name: a '..' `name` beside a plain `name.utf-8` is not used."""
    info = {b"piece length": 16384, b"pieces": b"\0" * 20, b"files": [{b"length": 3, b"path": [b"x"]}],
            b"name": b"..", b"name.utf-8": b"Fine"}
    meta = load_torrent(lt.bencode({b"info": info}))
    assert [f.path for f in meta.files] == ["Fine/x"]


@pytest.mark.parametrize("path,placed", [
    ([b"/etc", b"passwd"], "A/etc/passwd"),  # absolute: libtorrent drops the separator
    ([b"."], "A/_"), ([b""], "A/_"), ([b"x\x01y"], "A/x_y"), ([b"a/b"], "A/ab"),
])
def test_names_libtorrent_rewrites_safely_are_placed_where_it_puts_them(path, placed):
    raw = _v1_info(path)
    meta = load_torrent(raw)
    assert [f.path for f in meta.files] == [placed] == _lt_paths(raw)


def test_traversal_in_symlink_path_is_refused(tmp_path):
    info = {b"name": b"A", b"piece length": 16384, b"pieces": b"\0" * 20, b"files": [
        {b"length": 3, b"path": [b"x"]},
        {b"length": 0, b"path": [b"l"], b"attr": b"l", b"symlink path": [b"..", b"..", b"etc"]}]}
    with pytest.raises(UnsafePath, match="traversal rule: file 1 symlink path"):
        load_torrent(lt.bencode({b"info": info}), source="evil.torrent")


# -- v2 without piece layers ------------------------------------------------------------------

def test_v2_without_piece_layers_is_accepted(tmp_path):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "v2")
    doc = lt.bdecode(built.torrent.read_bytes())
    del doc[b"piece layers"]
    meta = load_torrent(lt.bencode(doc), source="layers.torrent")
    assert meta.piece_layers == {}
    big = next(f for f in meta.real_files if f.size > 16 * KIB)
    assert meta.v2_piece_hashes(big) is None and big.root


# -- reading the .torrent itself -----------------------------------------------------------------

def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "t.torrent"
    os.mkfifo(fifo)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(_error_of(fifo)), daemon=True)
    worker.start()
    worker.join(30)
    assert outcome and isinstance(outcome[0], BadInput) and "is a FIFO, not a .torrent file" in str(outcome[0])


def test_device_is_refused_without_reading():
    err = _error_of("/dev/zero")
    assert isinstance(err, BadInput) and "is a character device, not a .torrent file" in str(err)


def test_socket_is_refused(tmp_path):
    path = tmp_path / "s.torrent"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        err = _error_of(path)
        assert isinstance(err, BadInput) and str(path) in str(err)
    finally:
        sock.close()


def test_bigger_than_qbittorrent_loads_is_refused_unread(tmp_path):
    big = tmp_path / "big.torrent"
    with open(big, "wb") as fh:
        fh.truncate(MAX_TORRENT_BYTES + 1)  # sparse: refused from its size alone
    err = _error_of(big)
    assert isinstance(err, BadTorrent) and "more than qBittorrent loads" in str(err)


def _error_of(path):
    try:
        load_torrent(path)
    except Exception as exc:  # noqa: BLE001 - the test looks at it
        return exc
    return None
