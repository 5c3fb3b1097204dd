"""A swarm for tests: a libtorrent seeder on loopback that has every piece, which qBittorrent
really downloads from (so qBittorrent verifies each piece it writes, as it does for a seeder's
downloads), and which is introduced to qBittorrent again whenever qBittorrent wants pieces
(DHT, PeX and trackers are off in the test profile)."""

import threading
import time
from pathlib import Path

from companion.ltsession import add_params, isolated_session
from companion.torrent import load_torrent

from .helpers import make_torrent, write_payload

WANTS = {"downloading", "stalledDL", "metaDL", "forcedDL", "queuedDL"}


class Swarm:
    def __init__(self, qbt, root: Path):
        self.qbt = qbt
        self.root = Path(root)
        self.ses = isolated_session()
        self.sessions = [self.ses]
        self.handles: dict[str, object] = {}
        self.metas: dict[str, object] = {}
        self.original: dict[Path, bytes] = {}  # the downloaded copies' paths -> their torrent's bytes
        self.stopping = threading.Event()
        self.client = qbt.new_client()
        self.thread = threading.Thread(target=self._introduce, name="test-swarm", daemon=True)
        self.thread.start()

    def torrent(self, name: str, files: dict, *, seed: int, kind: str = "hybrid", piece_size: int = 16384) -> tuple:
        """Make a payload and its torrent; the seeder seeds it. Returns (torrent id, .torrent path)."""
        content = write_payload(self.root / "seeder" / name, files, seed=seed)
        torrent = make_torrent(content, piece_size=piece_size, kind=kind, out=self.root / f"{name}.torrent")
        meta = load_torrent(torrent)
        handle = self.ses.add_torrent(add_params(meta.raw, self.root / "seeder", seed_mode=True, stop_when_ready=False))
        self.handles[meta.id], self.metas[meta.id] = handle, meta
        return meta.id, torrent

    def download(self, torrent: Path, save_path: Path, **options) -> str:
        """qBittorrent adds the torrent and downloads it from the seeder (not waited for)."""
        meta = load_torrent(torrent)
        for entry in meta.real_files:
            self.original[Path(save_path) / entry.path] = (self.root / "seeder" / entry.path).read_bytes()
        self.qbt.client.torrents_add(torrent_files=meta.raw, save_path=str(save_path), **options)
        return meta.id

    def _introduce(self) -> None:
        last: dict[str, float] = {}
        while not self.stopping.wait(0.3):
            try:
                found = {t["hash"]: t for t in self.client.torrents_info()}
            except Exception:  # noqa: BLE001 - qBittorrent restarted or frozen by a test: next round
                continue
            for tid, handle in list(self.handles.items()):
                t = found.get(tid)
                if t is None or t["state"] not in WANTS or time.monotonic() - last.get(tid, 0.0) < 3.0:
                    continue
                if not handle.status().num_peers:
                    last[tid] = time.monotonic()
                    self._reintroduce(tid)

    def _reintroduce(self, tid: str) -> None:
        """Once both were seeds, neither libtorrent calls the other again (each remembers the other as
        a seed): a fresh seeder, in a session of its own, calls qBittorrent."""
        ses = isolated_session()
        self.sessions.append(ses)
        handle = ses.add_torrent(add_params(self.metas[tid].raw, self.root / "seeder", seed_mode=True,
                                            stop_when_ready=False))
        self.handles[tid] = handle
        handle.connect_peer(("127.0.0.1", self.qbt.peer_port))

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.handles.clear()
        self.sessions.clear()
