"""Which torrents the next scheduled drill run takes, and when it is due (pure)."""

from datetime import datetime, timedelta


def due(last_run: datetime | None, now: datetime, interval_hours: float) -> bool:
    return interval_hours > 0 and (last_run is None or now - last_run >= timedelta(hours=interval_hours))


def pick(candidates: list[dict], per_run: int, max_bytes: int = 0, swarm: bool = False) -> tuple[list[str], list[str]]:
    """Up to per_run torrents, least recently drilled first (candidates come in that order),
    skipping those whose scratch need exceeds max_bytes. Returns (picked, skipped)."""
    picked, skipped = [], []
    for c in candidates:
        need = c["payload_size"] * (2 if swarm else 1)
        if max_bytes and need > max_bytes:
            skipped.append(c["torrent_id"])
            continue
        if len(picked) < per_run:
            picked.append(c["torrent_id"])
    return picked, skipped
