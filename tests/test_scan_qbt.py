"""Where the real qBittorrent puts the files of a torrent with clashing paths, and the engine on
the names qBittorrent reports (the service's view: companion.locate.located_meta).

qBittorrent (4.5 and 5.1) hands libtorrent the torrent's original paths as renames, undoing
libtorrent's own renaming of clashing paths: two files named A/x1 both go to A/x1. The service
verifies what qBittorrent reports; `seedward check` (no qBittorrent) follows libtorrent."""

import shutil

import pytest

from companion.locate import located_meta
from companion.scan import Scanner
from companion.torrent import load_torrent
from tests.helpers import make_torrent, wait_until, write_payload
from tests.scan_cases import KIB, NAME, retitle

pytestmark = pytest.mark.qbt

CHECKING = {"checkingUP", "checkingDL", "checkingResumeData", "metaDL", "allocating", "moving"}


def test_engine_on_qbittorrents_names_agrees_with_its_recheck(qbt, tmp_path):
    src = tmp_path / "src"
    write_payload(src, {f"{NAME}/A/x1": 40000, f"{NAME}/b": 700, f"{NAME}/A/x2": 30000}, seed=4)
    raw = retitle(make_torrent(src / NAME, 16 * KIB, "v1").read_bytes(), {("b",): ("a",), ("A", "x2"): ("A", "x1")})
    meta = load_torrent(raw)
    assert [e.path for e in meta.real_files] == [f"{NAME}/A/x1", f"{NAME}/A/x1.1", f"{NAME}/a.1"]  # libtorrent's
    save = tmp_path / "save"
    (save / NAME / "A").mkdir(parents=True)
    shutil.copyfile(src / NAME / "A" / "x1", save / NAME / "A" / "x1")
    shutil.copyfile(src / NAME / "b", save / NAME / "a")
    tid = qbt.add_torrent(raw, save, skip_checking=False, wait=False)
    try:
        def checked():
            info = qbt.client.torrents_info(torrent_hashes=tid)
            return info and info[0]["state"] not in CHECKING and qbt.client.torrents_piece_states(torrent_hash=tid)

        states = wait_until(checked, 60, 0.2, "qBittorrent's check")
        files = [dict(f) for f in qbt.client.torrents_files(torrent_hash=tid)]
        assert [f["name"] for f in files] == [f"{NAME}/A/x1", f"{NAME}/A/x1", f"{NAME}/a"]
        located = located_meta(meta, files)
        assert [e.path for e in located.real_files] == [f["name"] for f in files]
        result = Scanner().full_scan(located, save)
        assert result.bad_pieces == [p for p, state in enumerate(states) if state != 2]
        # the second A/x1 reads the first's bytes; the first and `a` share its failed v1 pieces: cannot tell
        assert [f.status for f in result.files] == ["suspect", "size_mismatch", "suspect"]
    finally:
        qbt.client.torrents_delete(torrent_hashes=tid, delete_files=False)
