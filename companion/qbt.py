"""A thin adapter over qbittorrent-api: the calls seedward makes, errors wrapped into ours.

Handles qBittorrent 4.5 through 5.x: the library picks pause/stop and resume/start endpoints
by the Web API version; states come back in 5.x names (`pausedUP` -> `stoppedUP`).

qBittorrent bans an address after a few failed logins, so every login (the first one and the ones
qbittorrent-api makes by itself when a session expires) goes through a gate (`qbtlogin.LoginGate`):
a refused password is not tried again until its source changes, `seedward qbt login` or SIGHUP, and
never more than two failures fall in qBittorrent's ban window. A blocked login fails fast, without
touching the network.

Paths are mapped here, at the boundary (companion/pathmap.py, for a qBittorrent in a container):
every path a Qbt returns (save_path, content_path, download_path, a category's savePath) is the
path on this host, and every path it is given (add_torrent, set_location, create_category) is
mapped back to qBittorrent's. Nothing else in seedward maps a path.

A command (`Qbt.from_settings(..., one_try=True)`) makes one bounded attempt: connect within 3 s,
an answer within 10 s, no retry after a timeout (qbittorrent-api retries every request at two
levels and probes http then https first, which made a hung qBittorrent cost a command minutes), the
URL's scheme taken as written, and once qBittorrent did not answer, the command's later calls fail
at once with the same reason. The service keeps the patient client: it reconnects anyway.
"""

import logging
import threading
from pathlib import Path

import qbittorrentapi
import requests

from .errors import ConfigError, QbtError
from .pathmap import PathMap
from .qbtlogin import MAX_FAILURES, RECHECK_SECONDS, LoginGate, PasswordSource

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


PATH_FIELDS = ("save_path", "content_path", "download_path")  # what qBittorrent reports as absolute paths


def is_complete(torrent: dict) -> bool:
    return torrent.get("progress", 0) >= 1 and normalize_state(torrent.get("state", "")) in COMPLETE_STATES


class QbtUnreachable(QbtError):
    """qBittorrent at {}: unreachable: {}"""


class QbtLoginFailed(QbtError):
    """qBittorrent at {}: {}"""


class QbtNotFound(QbtError):
    """qBittorrent at {}: no torrent {}"""


# one_try (commands): seconds to connect, seconds to wait for an answer
ONE_TRY_CONNECT_SECONDS = 3.0
ONE_TRY_READ_SECONDS = 10.0


class Qbt:
    """The qBittorrent Web API as seedward uses it. Thread-safe (calls are serialized)."""

    def __init__(self, url: str, username: str, password: str = "", *, password_file=None, verify_tls: bool = True,
                 timeout: float = 30.0, login_record: Path | None = None, ban_window_seconds: float = 3600.0,
                 path_map: PathMap | None = None, name: str = "default", one_try: bool = False):
        self.url = url
        self.name = name
        self.path_map = path_map or PathMap()
        self.username = username
        self.source = PasswordSource(inline=password, file=Path(password_file).expanduser().absolute()
                                     if password_file else None)
        self.gate = LoginGate(f"{username}@{url}", self.source, login_record, ban_window_seconds)
        self._lock = threading.RLock()
        bound = (ONE_TRY_CONNECT_SECONDS, ONE_TRY_READ_SECONDS) if one_try else (min(5.0, timeout), timeout)
        self._client = qbittorrentapi.Client(
            host=url, username=username, password="", VERIFY_WEBUI_CERTIFICATE=verify_tls,
            REQUESTS_ARGS={"timeout": bound}, DISABLE_LOGGING_DEBUG_OUTPUT=True,
            RAISE_NOTIMPLEMENTEDERROR_FOR_UNIMPLEMENTED_API_ENDPOINTS=True,
            # one_try: urllib3's own retry off (qbittorrent-api's stays for what is not a timeout); the
            # URL's scheme used as written (else a HEAD over http, then https, each waits for the read timeout)
            **({"HTTPADAPTER_ARGS": {"max_retries": 0}, "FORCE_SCHEME_FROM_HOST": True} if one_try else {}),
        )
        self.silent: str = ""  # one_try: why qBittorrent did not answer (then no call is tried again)
        if one_try:
            self._one_attempt()
        self.version = ""
        self.api_version = ""
        # qbittorrent-api asks for the Web API version before every versioned endpoint (export,
        # tags, stop/start): answer from the value read at connect() instead of a request each time.
        fetch = self._client.app_web_api_version
        self._client.app_web_api_version = lambda **kw: self.api_version or fetch(**kw)
        # Every login, also qbittorrent-api's own after an expired session, asks the gate first.
        self._log_in = self._client.auth_log_in
        self._client.auth_log_in = self._gated_login

    @classmethod
    def from_settings(cls, settings, home=None, one_try: bool = False) -> "Qbt":
        """From a config.QbtSettings (the password file is read at each login). With the state home,
        the login record is shared with every other seedward process of that home. one_try: for a
        command (see the module's docstring)."""
        return cls(settings.url, settings.username, settings.password, password_file=settings.password_file or None,
                   verify_tls=settings.verify_tls, ban_window_seconds=settings.ban_window_seconds,
                   login_record=home.root / "qbt-login.json" if home is not None else None,
                   path_map=PathMap(getattr(settings, "path_map", ()) or ()), name=getattr(settings, "name", "default"),
                   one_try=one_try)

    def _one_attempt(self) -> None:
        """qbittorrent-api tries each request twice whatever its _retries says: a timeout is raised at
        once as the connection error it ends as, and remembered, so the command's next calls do not
        wait again. Other failures (refused, a kept-alive connection closed) keep its one quick retry."""
        attempt = getattr(self._client, "_request", None)
        if attempt is None:  # another qbittorrent-api: the timeouts above still bound each try
            return

        def once(*args, **kwargs):
            if self.silent:
                raise qbittorrentapi.APIConnectionError(self.silent)
            try:
                return attempt(*args, **kwargs)
            except requests.exceptions.Timeout as exc:
                self.silent = f"{type(exc).__name__}: {exc!r}"  # its text says "timed out"
                raise qbittorrentapi.APIConnectionError(self.silent) from exc

        self._client._request = once

    def _to_host(self, t: dict) -> dict:
        if self.path_map:
            for key in PATH_FIELDS:
                if t.get(key):
                    t[key] = self.path_map.to_host(t[key])
        return t

    def _call(self, fn, *args, **kwargs):
        with self._lock:
            try:
                return fn(*args, **kwargs)
            except qbittorrentapi.Forbidden403Error as exc:
                raise QbtError(self.url, f"request refused (403): {_reason(exc)}") from exc
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

    def _gated_login(self, username=None, password=None, **kwargs) -> None:
        state, why, wait = self.gate.check()
        if state != "ok":
            raise QbtLoginFailed(self.url, self._blocked(state, why, wait))
        try:
            secret = self.source.read()
        except ConfigError as exc:
            raise QbtLoginFailed(self.url, str(exc)) from None
        try:
            self._log_in(username=self.username, password=secret, **kwargs)
        except (qbittorrentapi.LoginFailed, qbittorrentapi.Forbidden403Error) as exc:
            banned = "banned" in _reason(exc).lower()
            self.gate.refused(banned)
            why = "this address is banned after failed logins" if banned else "wrong username or password"
            raise QbtLoginFailed(self.url, f"login refused for user {self.username!r} ({why}); "
                                 f"{self._until_changed()}") from exc
        self.gate.succeeded()

    def _until_changed(self) -> str:
        return (f"seedward will not try this password again until {self.source.describe()} changes, "
                "`seedward qbt login` is run or the service gets SIGHUP")

    def _blocked(self, state: str, why: str | None, wait: float) -> str:
        if state == "waiting_for_password":
            return (f"login refused for user {self.username!r} (wrong username or password); "
                    f"{self._until_changed()}")
        status = self.gate.status()
        return (f"{why}; next try in {wait:.0f}s (seedward fails at most {MAX_FAILURES} times per "
                f"{status['ban_window_seconds'] / 60:.0f} min, below qBittorrent's ban)")

    def retry_login(self, password: str | None = None) -> None:
        """SIGHUP / `seedward qbt login`: the password source may be tried again (budget and ban still hold).
        password: the inline password as the config says now (SIGHUP re-reads it; a file is read anyway)."""
        if password is not None and self.source.file is None:
            self.source = PasswordSource(inline=password)
            self.gate.source = self.source
        self.gate.reopen()

    @property
    def login_wait(self) -> float:
        """0 when a login may be tried, else how soon it is worth asking again (a few seconds: a new
        password, `seedward qbt login` or SIGHUP can open the gate any time)."""
        return 0.0 if self.gate.check()[0] == "ok" else RECHECK_SECONDS

    @property
    def login_failures(self) -> int:
        return self.gate.status()["failures_in_window"]

    def login_status(self) -> dict:
        """For `seedward status`: {"state": ok | waiting_for_password | budget_spent | banned, "reason",
        "failures_in_window", "max_failures_per_window", "ban_window_seconds", "next_try_in", "password_source"}."""
        return self.gate.status()

    def connect(self) -> str:
        """Log in and read the versions (and qBittorrent's ban settings). Returns its version ("v4.5.2")."""
        self._call(self._client.auth_log_in)
        self.api_version = ""
        self.version = str(self._call(self._client.app_version))
        self.api_version = str(self._call(self._client.app_web_api_version))
        try:
            prefs = self.preferences()
        except QbtError:
            prefs = {}
        self.gate.succeeded(prefs.get("web_ui_ban_duration"), prefs.get("web_ui_max_auth_fail_count"))
        return self.version

    def sync(self, rid: int = 0) -> dict:
        """`sync/maindata` since rid: {"rid", "full_update", "torrents": {hash: changed fields},
        "torrents_removed": [hash]}."""
        data = self._call(self._client.sync_maindata, rid=rid)
        torrents = {h: self._to_host(_plain(t)) for h, t in (data.get("torrents") or {}).items()}
        for t in torrents.values():
            if "state" in t:
                t["state"] = normalize_state(t["state"])
        return {"rid": data.get("rid", 0), "full_update": bool(data.get("full_update")), "torrents": torrents,
                "torrents_removed": list(data.get("torrents_removed") or [])}

    def torrents(self, hashes=None) -> list[dict]:
        found = self._call(self._client.torrents_info, torrent_hashes=hashes)
        out = [self._to_host(_plain(t)) for t in found]
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
                    skip_checking: bool = False, content_layout: str | None = None, **options) -> None:
        """Add a .torrent (bytes). options: more of qbittorrent-api's torrents_add arguments
        (upload_limit, ratio_limit, use_auto_torrent_management, ...). Raises QbtError if qBittorrent
        refuses it."""
        if options.get("download_path"):
            options["download_path"] = self.path_map.to_qbt(str(options["download_path"]))
        result = self._call(self._client.torrents_add, torrent_files=raw, save_path=self.path_map.to_qbt(str(save_path)),
                            category=category, tags=list(tags) or None, is_stopped=stopped,
                            is_skip_checking=skip_checking, content_layout=content_layout, **options)
        if str(result).strip() != "Ok.":
            raise QbtError(self.url, f"refused the torrent: {result}")

    def set_location(self, torrent_hash: str, save_path) -> None:
        """Move a torrent (qBittorrent moves its files) to this host path."""
        self._call(self._client.torrents_set_location, location=self.path_map.to_qbt(str(save_path)),
                   torrent_hashes=torrent_hash)

    def preferences(self) -> dict:
        return _plain(self._call(self._client.app_preferences))

    def set_preferences(self, prefs: dict) -> None:
        self._call(self._client.app_set_preferences, prefs=prefs)

    # -- categories, tags and per-torrent options (qbtstate: backup and restore) --

    def categories(self) -> dict[str, dict]:
        """{name: {"name", "savePath", ...}}"""
        out = {name: _plain(c) for name, c in dict(self._call(self._client.torrents_categories)).items()}
        for c in out.values():
            if c.get("savePath"):
                c["savePath"] = self.path_map.to_host(c["savePath"])
        return out

    def create_category(self, name: str, save_path: str = "") -> None:
        self._call(self._client.torrents_create_category, name=name,
                   save_path=self.path_map.to_qbt(save_path) if save_path else None)

    def tags(self) -> list[str]:
        return [str(t) for t in self._call(self._client.torrents_tags)]

    def create_tags(self, tags) -> None:
        self._call(self._client.torrents_create_tags, tags=list(tags))

    def rename_path(self, torrent_hash: str, old_path: str, new_path: str) -> None:
        self._call(self._client.torrents_rename_file, torrent_hash=torrent_hash, old_path=old_path, new_path=new_path)

    def file_priority(self, torrent_hash: str, indices, priority: int) -> None:
        self._call(self._client.torrents_file_priority, torrent_hash=torrent_hash, file_ids=list(indices),
                   priority=priority)

    def set_super_seeding(self, torrent_hash: str, enable: bool) -> None:
        self._call(self._client.torrents_set_super_seeding, enable=enable, torrent_hashes=torrent_hash)

    def set_auto_management(self, torrent_hash: str, enable: bool) -> None:
        self._call(self._client.torrents_set_auto_management, enable=enable, torrent_hashes=torrent_hash)


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
