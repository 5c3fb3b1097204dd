"""Isolated in-process libtorrent sessions: loopback only, no DHT, LSD, UPnP, NAT-PMP or trackers."""

import time
from pathlib import Path

import libtorrent as lt

from .errors import Error


class RecheckError(Error):
    """libtorrent recheck of {}: {}"""


def isolated_settings(listen: str = "127.0.0.1:0", **extra) -> dict:
    settings = {
        "listen_interfaces": listen,
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "announce_to_all_trackers": False,
        "anonymous_mode": False,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification
        | lt.alert.category_t.storage_notification,
        "user_agent": "seedward",
        "allow_multiple_connections_per_ip": True,
    }
    settings.update(extra)
    return settings


def isolated_session(**extra) -> lt.session:
    return lt.session(isolated_settings(**extra))


def add_params(torrent_raw: bytes, save_path: Path, *, seed_mode: bool = False, stop_when_ready: bool = True):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent_raw)
    atp.save_path = str(save_path)
    atp.trackers = []
    atp.url_seeds = []
    flags = atp.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
    if stop_when_ready:
        flags |= lt.torrent_flags.stop_when_ready
    if seed_mode:
        flags |= lt.torrent_flags.seed_mode
    atp.flags = flags
    return atp


def recheck(torrent_raw: bytes, save_path: Path, timeout: float = 600.0, session: lt.session | None = None) -> list[int]:
    """Let libtorrent check the payload from scratch. Returns the indices of failed pieces."""
    ses = session or isolated_session()
    handle = ses.add_torrent(add_params(torrent_raw, save_path))
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise RecheckError(save_path, f"no result after {timeout:.0f}s")
            ses.wait_for_alert(200)
            for alert in ses.pop_alerts():
                if isinstance(alert, lt.torrent_error_alert) and alert.handle == handle:
                    raise RecheckError(save_path, alert.message())
                if isinstance(alert, lt.torrent_checked_alert) and alert.handle == handle:
                    status = handle.status(lt.status_flags_t.query_pieces)
                    return [i for i, have in enumerate(status.pieces) if not have]
    finally:
        ses.remove_torrent(handle)
