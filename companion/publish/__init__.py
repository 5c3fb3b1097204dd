"""Companion torrents: a new torrent of a job's outputs and their provenance sidecars, made by
libtorrent, naming the original it derives from; seeded by qBittorrent or an embedded session.

The original torrent is never touched: its files, its torrent and its state in qBittorrent stay as
they were.
"""

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import libtorrent as lt

from ..errors import BadInput, Error
from ..states import COMPANION_TAG  # noqa: F401 - callers take it from here too
from ..torrent import TorrentMeta, list_files, load_torrent

log = logging.getLogger(__name__)

KIND_FLAGS = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}
MIN_PIECE = 16 * 1024  # BEP 52's smallest piece
MAX_PIECE = 16 * 1024 * 1024
TARGET_PIECES = 1500  # few enough for a small .torrent, enough for swarm granularity
METADATA_KEY = b"seedward"  # inside the info dictionary: covered by the info hash, so it cannot be stripped unseen


class PublishError(Error):
    """publish {}: {}"""


@dataclass(frozen=True)
class Companion:
    meta: TorrentMeta
    torrent_file: Path
    save_path: Path  # the folder holding the companion's root folder


def auto_piece_size(total: int) -> int:
    """A power of two giving about TARGET_PIECES pieces, between 16 KiB and 16 MiB."""
    size = MIN_PIECE
    while size < MAX_PIECE and total / size > TARGET_PIECES:
        size *= 2
    return size


def parse_piece_size(value: str | int) -> int | None:
    """`auto` -> None, else bytes (a power of two >= 16 KiB; K/M suffixes accepted)."""
    if isinstance(value, int):
        size = value
    else:
        text = value.strip().lower()
        if text == "auto":
            return None
        mult = 1
        if text[-1:] in ("k", "m"):
            mult = 1024 if text[-1] == "k" else 1024 * 1024
            text = text[:-1].rstrip("i")
        try:
            size = int(text) * mult
        except ValueError:
            raise BadInput("--piece-size", f"{value!r}: expected auto or a number of bytes") from None
    if size < MIN_PIECE or size > MAX_PIECE * 8 or size & (size - 1):
        raise BadInput("--piece-size", f"{size}: expected a power of two from 16 KiB to 128 MiB")
    return size


def build(content: Path, *, original: dict, job_id: str, kind: str = "hybrid", piece_size: int | None = None,
          trackers=(), private: bool = False, progress=None) -> bytes:
    """The .torrent of folder `content` (its name is the torrent's name). original: the original's
    torrents row (id, name, info_hash_v1, info_hash_v2). Returns the bencoded torrent."""
    content = Path(content)
    if kind not in KIND_FLAGS:
        raise BadInput("--kind", f"{kind!r}: expected v1, v2 or hybrid")
    if not content.is_dir():
        raise PublishError(content, "no such folder")
    files = list_files(content)  # path order: the same outputs make the same torrent on every filesystem
    total = sum(f.size for f in files)
    if not files or total == 0:
        raise PublishError(content, "nothing to publish (no output bytes)")
    size = piece_size or auto_piece_size(total)
    ct = lt.create_torrent(files, size, KIND_FLAGS[kind])
    for tier, url in enumerate(trackers):
        ct.add_tracker(url, tier)
    if private:
        ct.set_priv(True)
    ct.set_creator("seedward")
    ct.set_comment(comment(original, job_id))
    try:
        if progress is None:
            lt.set_piece_hashes(ct, str(content.parent))
        else:
            lt.set_piece_hashes(ct, str(content.parent), lambda piece: progress(piece, ct.num_pieces()))
    except (RuntimeError, OSError) as exc:
        raise PublishError(content, f"hashing failed: {exc}") from exc
    entry = ct.generate()
    entry[b"info"][METADATA_KEY] = companion_field(original, job_id)
    return lt.bencode(entry)


def comment(original: dict, job_id: str) -> str:
    hashes = ", ".join(f"{label} {value}" for label, value in (("v1", original["info_hash_v1"]),
                                                                ("v2", original["info_hash_v2"])) if value)
    return f"seedward companion of {original['name']} (info hash {hashes}); made by job {job_id}"


def companion_field(original: dict, job_id: str) -> dict:
    field = {b"companion of": {b"id": original["id"].encode(), b"name": original["name"].encode()}, b"job": job_id.encode()}
    for key in ("info_hash_v1", "info_hash_v2"):
        if original[key]:
            field[b"companion of"][key.encode()] = original[key].encode()
    return field


def companion_of(raw: bytes) -> dict | None:
    """Read back the metadata field: {"id", "name", "info_hash_v1"?, "info_hash_v2"?, "job"} or None."""
    decoded = lt.bdecode(raw)
    field = (decoded or {}).get(b"info", {}).get(METADATA_KEY)
    if not isinstance(field, dict):
        return None
    out = {k.decode(): v.decode() for k, v in field.get(b"companion of", {}).items()}
    out["job"] = field.get(b"job", b"").decode()
    return out


def add_to_qbittorrent(qbt, companion: Companion, category: str) -> None:
    """Add the companion to qBittorrent, which checks the files itself before it seeds them.
    Publishing the same companion again only makes sure of its tag."""
    if qbt.torrent(companion.meta.id) is not None:
        qbt.add_tags(companion.meta.id, [COMPANION_TAG])
        return
    qbt.add_torrent(companion.meta.raw, companion.save_path, category=category or None, tags=[COMPANION_TAG],
                    content_layout="Original")


class EmbeddedSeeder:
    """Seeds companion torrents from an in-process libtorrent session (`start()`/`stop()`, so the
    service can own one as a component). Without arguments it listens on loopback only."""

    def __init__(self, **session_settings):
        from ..ltsession import isolated_session

        self._settings = session_settings
        self._factory = isolated_session
        self.session: lt.session | None = None
        self.handles: dict[str, lt.torrent_handle] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self.session is None:
                self.session = self._factory(**self._settings)

    def stop(self) -> None:
        with self._lock:
            if self.session is not None:
                for handle in self.handles.values():
                    self.session.remove_torrent(handle)
                self.handles.clear()
                self.session = None

    @property
    def port(self) -> int:
        return self.session.listen_port() if self.session else 0

    def seed(self, raw: bytes, save_path: Path) -> lt.torrent_handle:
        """Seed a torrent whose payload is complete under save_path (checked by libtorrent as it seeds)."""
        from ..ltsession import add_params

        self.start()
        meta = load_torrent(raw)
        with self._lock:
            if meta.id in self.handles:
                return self.handles[meta.id]
            atp = add_params(raw, save_path, seed_mode=True, stop_when_ready=False)
            handle = self.session.add_torrent(atp)
            self.handles[meta.id] = handle
            return handle
