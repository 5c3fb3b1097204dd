"""Helpers for tests against the real qbittorrent-nox (the `qbt` fixture in conftest.py)."""

from pathlib import Path

from .helpers import make_torrent, write_payload


def seed_sample(qbt, root: Path, name: str, files: dict | None = None, *, seed: int = 1, kind: str = "hybrid",
                piece_size: int = 16384, wait: bool = True, **options) -> tuple[str, Path]:
    """Write a small payload under root/name, make its torrent and add it to qBittorrent
    (complete, seeding). Returns (qBittorrent's hash, the .torrent path)."""
    files = files or {"a.bin": 40_000, "sub/b.bin": 25_000}
    content = write_payload(root / name, files, seed=seed)
    torrent = make_torrent(content, piece_size=piece_size, kind=kind, out=root / f"{name}.torrent")
    return qbt.add_torrent(torrent, root, wait=wait, **options), torrent


def service_settings(qbt, *, poll_seconds: float = 0.2, sweep_minutes: float = 10.0, grace: float = 2.0,
                     jobs: int = 2, password: str | None = None):
    """Settings for a service talking to the test qbittorrent-nox (fast polling)."""
    from companion.config import Settings

    s = Settings()
    s.qbittorrent.url = qbt.url
    s.qbittorrent.username = qbt.username
    s.qbittorrent.password = qbt.password if password is None else password
    s.qbittorrent.poll_seconds = poll_seconds
    s.qbittorrent.backoff_max_seconds = 2.0
    s.service.sweep_minutes = sweep_minutes
    s.service.removal_grace_seconds = grace
    s.service.jobs = jobs
    return s


def torrent_states(catalog, ids) -> dict:
    rows = {r["id"]: r["protection"] for r in catalog.list_torrents()}
    return {h: rows.get(h) for h in ids}


def idle(service) -> bool:
    """No queued or running job."""
    return not service.catalog.pending_jobs()


def wait_states(service, ids, state: str = "protected", timeout: float = 60.0) -> dict:
    """Wait until every torrent has the protection state and the queue is empty."""
    from .helpers import wait_until

    def done():
        states = torrent_states(service.catalog, ids)
        return states if all(s == state for s in states.values()) and idle(service) else None

    return wait_until(done, timeout, 0.1, f"{len(ids)} torrents {state}")


def qbt_tags(qbt, torrent_id: str) -> set[str]:
    found = qbt.client.torrents_info(torrent_hashes=torrent_id)
    return {t.strip() for t in found[0]["tags"].split(",") if t.strip()} if found else set()
