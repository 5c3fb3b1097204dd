"""A thin adapter over qbittorrent-api: the calls seedward makes, errors wrapped into ours.

Handles qBittorrent 4.5 through 5.x: the library picks pause/stop and resume/start endpoints
by the Web API version; states come back in 5.x names (`pausedUP` -> `stoppedUP`).

qBittorrent bans an address after a few failed logins, so a refused login closes a gate:
every call fails fast, without touching the network, until `login_retry_seconds` have passed.
"""

import logging
import threading
import time

import qbittorrentapi

from .errors import QbtError

log = logging.getLogger(__name__)
# urllib3 warns on every retry of a refused connection; QbtUnreachable reports it once, in our words.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

# Torrent states whose payload is complete (after normalize_state).
COMPLETE_STATES = {"uploading", "stalledUP", "stoppedUP", "queuedUP", "forcedUP"}
# States in which the payload is being changed or checked by qBittorrent itself.
BUSY_STATES = {"checkingUP", "checkingDL", "checkingResumeData", "moving", "allocating", "metaDL",
               "forcedMetaDL"}


def normalize_state(state: str) -> str:
    """One vocabulary for 4.5 and 5.x: paused* becomes stopped*."""
    if state.startswith("paused"):
        return "stopped" + state[len("paused"):]
    return state


def is_complete(torrent: dict) -> bool:
    return torrent.get("progress", 0) >= 1 and normalize_state(torrent.get("state", "")) in COMPLETE_STATES


class QbtUnreachable(QbtError):
    """qBittorrent at {}: unreachable: {}"""


class QbtLoginFailed(QbtError):
    """qBittorrent at {}: {}"""


class QbtNotFound(QbtError):
    """qBittorrent at {}: no torrent {}"""


class Qbt:
    """The qBittorrent Web API as seedward uses it. Thread-safe (calls are serialized)."""

    def __init__(self, url: str, username: str, password: str, *, verify_tls: bool = True,
                 login_retry_seconds: float = 300.0, timeout: float = 30.0):
        self.url = url
        self.username = username
        self.login_retry_seconds = login_retry_seconds
        self.login_blocked_until = 0.0
        self.login_failures = 0
        self._lock = threading.RLock()
        self._client = qbittorrentapi.Client(
            host=url, username=username, password=password, VERIFY_WEBUI_CERTIFICATE=verify_tls,
            REQUESTS_ARGS={"timeout": (min(5.0, timeout), timeout)}, DISABLE_LOGGING_DEBUG_OUTPUT=True,
            RAISE_NOTIMPLEMENTEDERROR_FOR_UNIMPLEMENTED_API_ENDPOINTS=True,
        )
        self.version = ""
        self.api_version = ""
        # qbittorrent-api asks for the Web API version before every versioned endpoint (export,
        # tags, stop/start): answer from the value read at connect() instead of a request each time.
        fetch = self._client.app_web_api_version
        self._client.app_web_api_version = lambda **kw: self.api_version or fetch(**kw)

    @classmethod
    def from_settings(cls, settings) -> "Qbt":
        """From a config.QbtSettings (the password may come from a file)."""
        return cls(settings.url, settings.username, settings.secret(), verify_tls=settings.verify_tls,
                   login_retry_seconds=settings.login_retry_seconds)

    def _call(self, fn, *args, **kwargs):
        with self._lock:
            wait = self.login_blocked_until - time.monotonic()
            if wait > 0:
                raise QbtLoginFailed(self.url, f"login refused for user {self.username!r}; next try in {wait:.0f}s")
            try:
                return fn(*args, **kwargs)
            except (qbittorrentapi.LoginFailed, qbittorrentapi.Forbidden403Error) as exc:
                self._login_refused(exc)
            except qbittorrentapi.NotFound404Error as exc:
                raise QbtNotFound(self.url, _hashes_of(kwargs)) from exc
            except qbittorrentapi.Conflict409Error as exc:
                raise QbtError(self.url, f"conflict: {_reason(exc)}") from exc
            except qbittorrentapi.HTTP4XXError as exc:
                raise QbtError(self.url, f"request refused: {_reason(exc)}") from exc
            except qbittorrentapi.APIConnectionError as exc:
                raise QbtUnreachable(self.url, _connection_reason(exc)) from exc
            except qbittorrentapi.APIError as exc:
                raise QbtError(self.url, _reason(exc)) from exc
            except NotImplementedError as exc:
                raise QbtError(self.url, f"this qBittorrent ({self.version}) is too old: {_reason(exc)}") from exc

    def _login_refused(self, exc) -> None:
        self.login_failures += 1
        self.login_blocked_until = time.monotonic() + self.login_retry_seconds
        banned = "banned" in _reason(exc).lower()
        why = "this address is banned after failed logins" if banned else "wrong username or password"
        raise QbtLoginFailed(self.url, f"login refused for user {self.username!r} ({why}); "
                             f"next try in {self.login_retry_seconds:.0f}s") from exc

    @property
    def login_wait(self) -> float:
        return max(0.0, self.login_blocked_until - time.monotonic())

    def connect(self) -> str:
        """Log in and read the versions. Returns qBittorrent's version ("v4.5.2")."""
        self._call(self._client.auth_log_in)
        self.api_version = ""
        self.version = str(self._call(self._client.app_version))
        self.api_version = str(self._call(self._client.app_web_api_version))
        self.login_failures = 0
        return self.version

    @property
    def v5(self) -> bool:
        return _version_tuple(self.api_version) >= (2, 11)

    def sync(self, rid: int = 0) -> dict:
        """`sync/maindata` since rid: {"rid", "full_update", "torrents": {hash: changed fields},
        "torrents_removed": [hash]}."""
        data = self._call(self._client.sync_maindata, rid=rid)
        torrents = {h: _plain(t) for h, t in (data.get("torrents") or {}).items()}
        for t in torrents.values():
            if "state" in t:
                t["state"] = normalize_state(t["state"])
        return {"rid": data.get("rid", 0), "full_update": bool(data.get("full_update")), "torrents": torrents,
                "torrents_removed": list(data.get("torrents_removed") or [])}

    def torrents(self, hashes=None) -> list[dict]:
        found = self._call(self._client.torrents_info, torrent_hashes=hashes)
        out = [_plain(t) for t in found]
        for t in out:
            t["state"] = normalize_state(t.get("state", ""))
        return out

    def torrent(self, torrent_hash: str) -> dict | None:
        found = self.torrents(torrent_hash)
        return found[0] if found else None

    def files(self, torrent_hash: str) -> list[dict]:
        """[{index, name (path relative to the save path, renames applied), size, priority, progress}]"""
        found = self._call(self._client.torrents_files, torrent_hash=torrent_hash)
        out = []
        for i, f in enumerate(found):
            row = _plain(f)
            row.setdefault("index", i)
            out.append(row)
        return out

    def export(self, torrent_hash: str) -> bytes:
        """The .torrent as qBittorrent has it (needs qBittorrent >= 4.5)."""
        return bytes(self._call(self._client.torrents_export, torrent_hash=torrent_hash))

    def stop(self, torrent_hash: str) -> None:
        """Stop (4.x: pause) a torrent."""
        self._call(self._client.torrents_stop, torrent_hashes=torrent_hash)

    def start(self, torrent_hash: str) -> None:
        """Start (4.x: resume) a torrent."""
        self._call(self._client.torrents_start, torrent_hashes=torrent_hash)

    def recheck(self, torrent_hash: str) -> None:
        self._call(self._client.torrents_recheck, torrent_hashes=torrent_hash)

    def add_tags(self, torrent_hash: str, tags) -> None:
        self._call(self._client.torrents_add_tags, tags=list(tags), torrent_hashes=torrent_hash)

    def remove_tags(self, torrent_hash: str, tags) -> None:
        self._call(self._client.torrents_remove_tags, tags=list(tags), torrent_hashes=torrent_hash)

    def add_torrent(self, raw: bytes, save_path, *, category: str | None = None, tags=(), stopped: bool = False,
                    skip_checking: bool = False, content_layout: str | None = None) -> None:
        """Add a .torrent (bytes). Raises QbtError if qBittorrent refuses it."""
        result = self._call(self._client.torrents_add, torrent_files=raw, save_path=str(save_path),
                            category=category, tags=list(tags) or None, is_stopped=stopped,
                            is_skip_checking=skip_checking, content_layout=content_layout)
        if str(result).strip() != "Ok.":
            raise QbtError(self.url, f"refused the torrent: {result}")

    def preferences(self) -> dict:
        return _plain(self._call(self._client.app_preferences))

    def set_preferences(self, prefs: dict) -> None:
        self._call(self._client.app_set_preferences, prefs=prefs)


def _plain(obj) -> dict:
    return {k: v for k, v in dict(obj).items()}


def _hashes_of(kwargs) -> str:
    return str(kwargs.get("torrent_hash") or kwargs.get("torrent_hashes") or "?")


def _reason(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _connection_reason(exc) -> str:
    text = str(exc)
    for needle, short in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                          ("Name or service not known", "unknown host"), ("SSLError", "TLS error"),
                          ("RemoteDisconnected", "connection closed by the server")):
        if needle in text:
            return short
    return _reason(exc)


def _version_tuple(version: str) -> tuple:
    try:
        return tuple(int(x) for x in version.lstrip("v").split("."))
    except ValueError:
        return (0,)
