"""The drill's libtorrent layer: isolated recheck of every piece, swarm proof over loopback, timeouts."""

import shutil

import libtorrent as lt
import pytest

from companion import ltsession
from companion.torrent import load_torrent
from tests.helpers import flip_byte, make_torrent, write_payload

KINDS = ("v1", "v2", "hybrid")
PIECE = 16384


@pytest.fixture(scope="module")
def payloads(tmp_path_factory):
    """One multi-file payload (with an empty and a tiny file) and its v1, v2 and hybrid torrents."""
    root = tmp_path_factory.mktemp("payload")
    write_payload(root / "album", {"a.bin": 5 * PIECE + 123, "sub/b.bin": 3 * PIECE, "c.txt": 7, "empty": b""})
    return root, {kind: make_torrent(root / "album", PIECE, kind, out=root / f"{kind}.torrent").read_bytes()
                  for kind in KINDS}


def copy_payload(src_root, dest):
    shutil.copytree(src_root / "album", dest / "album")
    return dest


@pytest.mark.parametrize("kind", KINDS)
def test_check_payload_reads_every_piece(payloads, tmp_path, kind):
    root, torrents = payloads
    meta = load_torrent(torrents[kind])
    save = copy_payload(root, tmp_path)
    ses = ltsession.isolated_session()
    handle, result = ltsession.check_payload(ses, torrents[kind], save, timeout=60)
    assert result.num_pieces == meta.num_pieces and result.ok
    ses.remove_torrent(handle)

    # damage one byte of piece 2 of a.bin and drop c.txt: exactly those pieces fail
    a = next(f for f in meta.real_files if f.path.endswith("a.bin"))
    c = next(f for f in meta.real_files if f.path.endswith("c.txt"))
    flip_byte(save / a.path, 2 * PIECE + 10)
    (save / c.path).unlink()
    piece_a = (a.offset + 2 * PIECE + 10) // meta.piece_length
    piece_c = c.offset // meta.piece_length
    handle, result = ltsession.check_payload(ses, torrents[kind], save, timeout=60)
    assert result.bad_pieces == sorted({piece_a, piece_c})
    assert not result.ok


@pytest.mark.parametrize("kind", KINDS)
def test_swarm_proof_downloads_everything_from_the_seeder(payloads, tmp_path, kind):
    root, torrents = payloads
    meta = load_torrent(torrents[kind])
    save = copy_payload(root, tmp_path / "seed")
    dest = tmp_path / "leech"
    dest.mkdir()
    seeder = ltsession.isolated_session()
    handle, check = ltsession.check_payload(seeder, torrents[kind], save, timeout=60)
    assert check.ok
    proof = ltsession.swarm_proof(seeder, handle, torrents[kind], dest, timeout=60)
    assert proof.ok and proof.check.num_pieces == meta.num_pieces
    assert proof.bytes >= meta.payload_size
    for f in meta.real_files:
        assert (dest / f.path).read_bytes() == (save / f.path).read_bytes()
    # the seeder really served it: its upload counter moved
    assert handle.status().total_payload_upload >= meta.payload_size


def test_swarm_proof_fails_when_the_seeder_lacks_pieces(payloads, tmp_path):
    root, torrents = payloads
    save = copy_payload(root, tmp_path / "seed")
    meta = load_torrent(torrents["v1"])
    a = next(f for f in meta.real_files if f.path.endswith("a.bin"))
    flip_byte(save / a.path, 0)
    dest = tmp_path / "leech"
    dest.mkdir()
    seeder = ltsession.isolated_session()
    handle, check = ltsession.check_payload(seeder, torrents["v1"], save, timeout=60)
    assert check.bad_pieces == [0]
    with pytest.raises(ltsession.SwarmError, match="stalled"):
        ltsession.swarm_proof(seeder, handle, torrents["v1"], dest, timeout=2)


def test_check_that_never_finishes_times_out(payloads, tmp_path):
    """A paused session never starts checking: the checked alert never comes."""
    root, torrents = payloads
    save = copy_payload(root, tmp_path)
    ses = ltsession.isolated_session()
    ses.pause()
    with pytest.raises(ltsession.RecheckTimeout, match="did not finish checking within 1s"):
        ltsession.check_payload(ses, torrents["hybrid"], save, timeout=1)
    assert ses.get_torrents() == []  # the torrent was removed on the way out


def test_isolated_session_is_loopback_only(tmp_path):
    ses = ltsession.isolated_session()
    settings = ses.get_settings()
    assert settings["listen_interfaces"].startswith("127.0.0.1")
    assert not settings["enable_dht"] and not settings["enable_lsd"]
    assert not settings["enable_upnp"] and not settings["enable_natpmp"]
    write_payload(tmp_path / "x", {"y.bin": PIECE})
    raw = make_torrent(tmp_path / "x", PIECE, "v1", trackers=["http://tracker.invalid/announce"]).read_bytes()
    atp = ltsession.add_params(raw, tmp_path)
    assert atp.flags & lt.torrent_flags.stop_when_ready
    handle = ses.add_torrent(atp)
    # the torrent's own tracker is dropped: an isolated session announces nowhere
    assert [t["url"] for t in handle.trackers()] == []
    assert handle.url_seeds() == []


def test_libtorrent_file_error_is_raised_naming_the_file(payloads, tmp_path):
    root, torrents = payloads
    save = copy_payload(root, tmp_path)
    (save / "album" / "c.txt").unlink()
    (save / "album" / "c.txt").mkdir()  # libtorrent cannot read a directory as the file
    ses = ltsession.isolated_session()
    with pytest.raises(ltsession.RecheckError, match="c.txt.*Is a directory"):
        ltsession.check_payload(ses, torrents["v1"], save, timeout=60)
    assert ses.get_torrents() == []
