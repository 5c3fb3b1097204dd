"""Isolated in-process libtorrent sessions: loopback only, no DHT, LSD, UPnP, NAT-PMP or trackers."""

import time
from dataclasses import dataclass
from pathlib import Path

import libtorrent as lt

from .errors import Error
from .scan import Cancelled


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
    # load_torrent_buffer moves trackers, web seeds and DHT nodes out of the torrent_info into
    # the params, where they can be dropped (with torrent_info(raw) libtorrent would announce).
    atp = lt.load_torrent_buffer(torrent_raw)
    atp.save_path = str(save_path)
    atp.trackers = []
    atp.url_seeds = []
    atp.dht_nodes = []
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
    handle, result = check_payload(ses, torrent_raw, save_path, timeout)
    ses.remove_torrent(handle)
    return result.bad_pieces


class RecheckTimeout(RecheckError):
    """libtorrent recheck of {}: {}"""


class SwarmError(Error):
    """swarm proof of {}: {}"""


@dataclass
class CheckResult:
    """Every piece's result from libtorrent's own check of a payload."""

    num_pieces: int
    bad_pieces: list[int]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.bad_pieces


@dataclass
class SwarmResult:
    seconds: float  # from connect to the downloader's last piece
    bytes: int  # payload bytes the downloader received
    check: CheckResult  # the downloader's own recheck of what it received

    @property
    def ok(self) -> bool:
        return self.check.ok


def _wait_checked(ses: lt.session, handle, save_path: Path, deadline: float, timeout: float, cancel=None,
                  progress=None) -> None:
    """Block until libtorrent's checked alert for handle; its errors, the deadline and cancel raise.
    progress(fraction): libtorrent's own checking progress, polled."""
    while True:
        if progress is not None:
            progress(handle.status().progress)
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"libtorrent check of {save_path}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RecheckTimeout(save_path, f"libtorrent did not finish checking within {timeout:g}s")
        ses.wait_for_alert(int(min(remaining, 0.2) * 1000) + 1)
        for alert in ses.pop_alerts():
            if getattr(alert, "handle", None) != handle:
                continue
            if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                raise RecheckError(save_path, alert.message())
            if isinstance(alert, lt.torrent_checked_alert):
                return


def piece_results(handle, num_pieces: int) -> list[bool]:
    """libtorrent's verdict for every piece; refuses a partial answer."""
    pieces = list(handle.status(lt.status_flags_t.query_pieces).pieces)
    if len(pieces) != num_pieces:
        raise RecheckError(handle.status().save_path, f"libtorrent reported {len(pieces)} of {num_pieces} pieces")
    return pieces


def check_payload(ses: lt.session, torrent_raw: bytes, save_path: Path, timeout: float, cancel=None, progress=None):
    """Add the torrent stopped-when-ready, wait for the checked alert, read every piece
    (progress(fraction) while libtorrent checks).

    Returns (handle, CheckResult); the torrent stays in `ses` (paused) so the caller may seed
    it or remove it. On error or timeout the torrent is removed before raising.
    """
    started = time.monotonic()
    atp = add_params(torrent_raw, save_path)
    num_pieces = atp.ti.num_pieces()
    handle = ses.add_torrent(atp)
    try:
        _wait_checked(ses, handle, save_path, started + timeout, timeout, cancel, progress)
        pieces = piece_results(handle, num_pieces)
    except BaseException:
        ses.remove_torrent(handle)
        raise
    bad = [i for i, have in enumerate(pieces) if not have]
    return handle, CheckResult(num_pieces, bad, time.monotonic() - started)


def flush_to_disk(ses: lt.session, handle, deadline: float) -> None:
    """Wait until libtorrent has written every received byte to the files: it reports seeding once
    each piece hashed, which can be before its write buffer reached the disk."""
    handle.flush_cache()
    while time.monotonic() < deadline:
        ses.wait_for_alert(200)
        if any(isinstance(a, lt.cache_flushed_alert) and a.handle == handle for a in ses.pop_alerts()):
            return


def swarm_proof(seeder: lt.session, seed_handle, torrent_raw: bytes, dest: Path, timeout: float,
                downloader: lt.session | None = None, cancel=None) -> SwarmResult:
    """Seed a checked payload from `seeder` to a second isolated session over loopback.

    The downloader starts from an empty `dest`, connects only to the seeder, must receive
    every piece (libtorrent hash-checks each on arrival) and then rechecks what it wrote.
    """
    ses = downloader or isolated_session()
    deadline = time.monotonic() + timeout
    seed_handle.resume()
    atp = add_params(torrent_raw, dest, stop_when_ready=False)
    num_pieces = atp.ti.num_pieces()
    handle = ses.add_torrent(atp)
    started = time.monotonic()
    try:
        handle.connect_peer(("127.0.0.1", seeder.listen_port()))
        while True:
            status = handle.status()
            if status.is_seeding:
                break
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"libtorrent download to {dest}")
            if time.monotonic() > deadline:
                raise SwarmError(dest, f"download stalled at {status.progress:.0%} after {timeout:g}s "
                                 f"({status.num_peers} peers)")
            ses.wait_for_alert(200)
            for alert in ses.pop_alerts():
                if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)) and alert.handle == handle:
                    raise SwarmError(dest, alert.message())
            if status.num_peers == 0 and status.state == lt.torrent_status.downloading:
                handle.connect_peer(("127.0.0.1", seeder.listen_port()))
        seconds = time.monotonic() - started
        received = handle.status().total_payload_download
        flush_to_disk(ses, handle, deadline)
    finally:
        ses.remove_torrent(handle)
        seed_handle.pause()
    # A fresh add of the finished download makes libtorrent read it all back from disk.
    check_handle, check = check_payload(ses, torrent_raw, dest, max(deadline - time.monotonic(), 1.0), cancel)
    ses.remove_torrent(check_handle)
    return SwarmResult(seconds, received, check)
