"""A private qbittorrent-nox on loopback for the demo, the tests and the benchmarks; never part of
the shipped service (which only talks to the user's qBittorrent, through companion/qbt.py).

The profile lives in its own folder; DHT, LSD, UPnP/NAT-PMP and PeX are off; the legal
notice is accepted; the WebUI password is set through the config file's PBKDF2 hash so it
never appears on a command line.
"""

import base64
import hashlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import qbittorrentapi

from ..childenv import child_env
from ..errors import Error

log = logging.getLogger(__name__)

# qBittorrent's states for a torrent whose payload is complete (4.5 names and 5.x names).
SEEDING_STATES = {"uploading", "stalledUP", "pausedUP", "stoppedUP", "queuedUP", "forcedUP"}


class QbtProcessError(Error):
    """qbittorrent-nox ({}): {}"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pbkdf2_entry(password: str) -> str:
    """The `WebUI\\Password_PBKDF2` value qBittorrent (>= 4.2) expects."""
    salt = secrets.token_bytes(16)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 100_000, 64)
    return f"@ByteArray({base64.b64encode(salt).decode()}:{base64.b64encode(key).decode()})"


def write_config(profile: Path, *, webui_port: int, peer_port: int, username: str, password: str,
                 save_path: Path) -> Path:
    conf = profile / "qBittorrent" / "config" / "qBittorrent.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    logs = profile / "qBittorrent" / "data" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        "[LegalNotice]\nAccepted=true\n\n"
        "[Application]\n"
        "FileLogger\\Enabled=true\n"
        f"FileLogger\\Path={logs}\n\n"
        "[BitTorrent]\n"
        "Session\\DHTEnabled=false\n"
        "Session\\LSDEnabled=false\n"
        "Session\\PeXEnabled=false\n"
        "Session\\AnonymousModeEnabled=true\n"
        "Session\\QueueingSystemEnabled=false\n"
        "Session\\AddTrackersEnabled=false\n"
        "Session\\Interface=lo\n"
        "Session\\InterfaceName=lo\n"
        "Session\\InterfaceAddress=127.0.0.1\n"
        f"Session\\Port={peer_port}\n"
        f"Session\\DefaultSavePath={save_path}\n"
        "Session\\TempPathEnabled=false\n"
        "Session\\TorrentContentLayout=Original\n\n"
        "[Network]\nPortForwardingEnabled=false\n\n"
        "[Preferences]\n"
        "Connection\\UPnP=false\n"
        "General\\Locale=en\n"
        "WebUI\\Enabled=true\n"
        "WebUI\\Address=127.0.0.1\n"
        f"WebUI\\Port={webui_port}\n"
        "WebUI\\LocalHostAuth=true\n"
        "WebUI\\HostHeaderValidation=false\n"
        "WebUI\\CSRFProtection=false\n"
        f"WebUI\\Username={username}\n"
        f"WebUI\\Password_PBKDF2=\"{pbkdf2_entry(password)}\"\n"
    )
    os.chmod(conf, 0o600)
    return conf


class QbtProcess:
    """One qbittorrent-nox with a private profile. `start()`, `stop()`, `restart()`."""

    def __init__(self, root: Path, username: str = "seedward", password: str | None = None,
                 exe: str | None = None):
        self.root = Path(root)
        self.profile = self.root / "profile"
        self.downloads = self.root / "downloads"
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.exe = exe or shutil.which("qbittorrent-nox")
        if self.exe is None:
            raise QbtProcessError("not found", "install the Debian package qbittorrent-nox")
        self.port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen | None = None
        self._client: qbittorrentapi.Client | None = None
        self.downloads.mkdir(parents=True, exist_ok=True)
        write_config(self.profile, webui_port=self.port, peer_port=self.peer_port, username=self.username,
                     password=self.password, save_path=self.downloads)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.profile / "qBittorrent" / "data" / "logs" / "qbittorrent.log"

    @property
    def client(self) -> qbittorrentapi.Client:
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def new_client(self, password: str | None = None) -> qbittorrentapi.Client:
        return qbittorrentapi.Client(host=self.url, username=self.username,
                                     password=self.password if password is None else password,
                                     REQUESTS_ARGS={"timeout": (5, 30)})

    def start(self, timeout: float = 30.0) -> "QbtProcess":
        env = child_env("qbittorrent-nox", {"HOME": str(self.root)})
        out = open(self.root / "qbittorrent-nox.out", "ab")
        self.proc = subprocess.Popen([self.exe, f"--profile={self.profile}", f"--webui-port={self.port}"],
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        out.close()
        self._client = None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise QbtProcessError(self.url, f"exited with {self.proc.returncode} at start; see "
                                      f"{self.root / 'qbittorrent-nox.out'}")
            try:
                self.client.auth_log_in()
                self.client.app_version()
                break
            except qbittorrentapi.LoginFailed as exc:
                raise QbtProcessError(self.url, "refused the configured credentials") from exc
            except qbittorrentapi.APIConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise QbtProcessError(self.url, f"WebUI did not answer within {timeout:.0f}s") from None
                time.sleep(0.1)
        # Belt and braces: the file settings, enforced again through the API.
        self.client.app_set_preferences({"dht": False, "lsd": False, "pex": False, "upnp": False,
                                         "anonymous_mode": True, "queueing_enabled": False})
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._client = None

    def restart(self) -> "QbtProcess":
        self.stop()
        return self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def add_torrent(self, torrent: Path | bytes, save_path: Path, *, skip_checking: bool = True,
                    wait: bool = True, timeout: float = 60.0, **options) -> str:
        """Add a .torrent whose payload is already under save_path; returns qBittorrent's hash.

        With wait, returns once qBittorrent reports it complete (seeding)."""
        from ..torrent import load_torrent

        raw = torrent if isinstance(torrent, bytes) else Path(torrent).read_bytes()
        torrent_id = load_torrent(raw).id
        result = self.client.torrents_add(torrent_files=raw, save_path=str(save_path),
                                          is_skip_checking=skip_checking, **options)
        if result != "Ok.":
            raise QbtProcessError(self.url, f"refused the torrent {torrent_id}: {result}")
        if wait:
            self.wait_complete(torrent_id, timeout)
        return torrent_id

    def wait_complete(self, torrent_id: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = self.client.torrents_info(torrent_hashes=torrent_id)
            if found and found[0]["progress"] >= 1 and found[0]["state"] in SEEDING_STATES:
                return dict(found[0])
            if time.monotonic() > deadline:
                state = found[0]["state"] if found else "absent"
                raise QbtProcessError(self.url, f"torrent {torrent_id} not complete after {timeout:.0f}s ({state})")
            time.sleep(0.1)

    def remove_all(self) -> None:
        """Remove every torrent (keeps files): a clean slate between tests sharing one process."""
        self.client.torrents_delete(delete_files=False, torrent_hashes="all")
        deadline = time.monotonic() + 30
        while self.client.torrents_info() and time.monotonic() < deadline:
            time.sleep(0.1)

    def __enter__(self) -> "QbtProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
