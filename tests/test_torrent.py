"""load_torrent: libtorrent-parsed metadata, qBittorrent's id, and refusal of unsafe or broken torrents."""

import libtorrent as lt
import pytest

from companion.errors import BadTorrent, UnsafePath
from companion.torrent import load_torrent
from tests.scan_cases import KIB, NAME, build, multi_layout


@pytest.mark.parametrize("creator", ["v1", "v2", "hybrid", "mktorrent"])
def test_fields_match_libtorrent(tmp_path, creator):
    built = build(tmp_path, multi_layout(32 * KIB), 32 * KIB, creator)
    meta = load_torrent(built.torrent)
    ti = lt.torrent_info(str(built.torrent))
    ih = ti.info_hashes()
    assert meta.kind == {"mktorrent": "v1"}.get(creator, creator)
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
    if meta.has_v1:
        assert list(meta.v1_hashes) == [bytes(ti.hash_for_piece(p)) for p in range(ti.num_pieces())]
    else:
        assert meta.v1_hashes is None
    if meta.has_v2:
        big = next(f for f in meta.real_files if f.size > 32 * KIB)
        assert len(meta.v2_piece_hashes(big)) == len(meta.file_pieces(big))
        assert all(f.root for f in meta.real_files if f.size)
        assert not meta.has_v1 or any(f.pad for f in meta.files)
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
    with pytest.raises(BadTorrent, match="nope.torrent"):
        load_torrent(tmp_path / "nope.torrent")


def test_v2_without_piece_layers_is_refused(tmp_path):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "v2")
    doc = lt.bdecode(built.torrent.read_bytes())
    del doc[b"piece layers"]
    with pytest.raises(BadTorrent, match="piece layer missing"):
        load_torrent(lt.bencode(doc), source="layers.torrent")


@pytest.mark.parametrize("path", [[b".."], [b"a", b"..", b"b"], [b"/etc"], [b"a\\..\\b"], [b"."], [b""]])
def test_unsafe_v1_names(path):
    info = {b"name": b"A", b"piece length": 16384, b"pieces": b"\0" * 20,
            b"files": [{b"length": 3, b"path": path}]}
    with pytest.raises((UnsafePath, BadTorrent)):
        load_torrent(lt.bencode({b"info": info}), source="evil.torrent")
