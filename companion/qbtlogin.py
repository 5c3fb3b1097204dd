"""When seedward may log in to qBittorrent: never with a password it already refused, never more than
two failures within qBittorrent's ban window.

qBittorrent counts failed logins per client address until one succeeds and bans the address after
`web_ui_max_auth_fail_count` (default 5) for `web_ui_ban_duration` (default 3600 s); every local
client shares 127.0.0.1, the user's browser included. So after a refused login seedward waits for the
password source to change (the password file re-read when it changes), for `seedward qbt login`, or
for SIGHUP to the service; and even then it fails at most twice per ban window, leaving the other
attempts to the user. The record of refusals and failures is shared by every seedward process of a
state home (`qbt-login.json`, 0600), so a CLI command does not spend attempts the service already spent.
"""

import fcntl
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

MAX_FAILURES = 2  # per ban window, whatever qBittorrent allows
SETTLE_SECONDS = 2.0  # a password file changed this recently may still be being written
RECHECK_SECONDS = 2.0  # a blocked caller looks again this often (no network: a stat of two files)


@dataclass(frozen=True)
class PasswordSource:
    """The WebUI password: a file (read on every login attempt) or a value from the config or environment."""

    inline: str = ""
    file: Path | None = None

    @classmethod
    def from_settings(cls, settings) -> "PasswordSource":
        if settings.password_file:
            return cls(file=Path(settings.password_file).expanduser().absolute())
        return cls(inline=settings.password)

    def describe(self) -> str:
        if self.file is not None:
            return f"the password file {self.file}"
        return "the configured password ([qbittorrent] password, re-read on SIGHUP, or QBITTORRENTAPI_PASSWORD)"

    def identity(self) -> list:
        """What changes when the source is rewritten (never the secret itself)."""
        if self.file is None:
            return ["inline"]
        try:
            st = os.stat(self.file)
        except OSError as exc:
            return ["missing", exc.errno]
        return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def changed_at(self) -> float | None:
        if self.file is None:
            return None
        try:
            return os.stat(self.file).st_mtime
        except OSError:
            return None

    def read(self) -> str:
        if self.file is None:
            return self.inline
        try:
            return self.file.read_text().strip()
        except OSError as exc:
            raise ConfigError(self.file, f"cannot read password file: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:  # never shown: it is a secret
            raise ConfigError(self.file, "the password file is not UTF-8 text") from exc


def decide(record: dict, now: float, identity: list, window: float, max_fail: int) -> tuple[str, str | None, float]:
    """(state, why, wait) for one login attempt now. State: "ok" (try), "waiting_for_password" (the
    source is the one refused), "budget_spent" (failures in the window), "banned". Pure."""
    banned_until = record.get("banned_until") or 0
    if banned_until > now:
        return "banned", "qBittorrent banned this address after failed logins", banned_until - now
    if record.get("refused") is not None and record["refused"] == identity:
        return "waiting_for_password", "the password was refused", 0.0
    allowed = max(1, min(MAX_FAILURES, max_fail - 1)) if max_fail > 0 else MAX_FAILURES
    recent = sorted(t for t in record.get("failures", []) if t > now - window)
    if len(recent) >= allowed:
        return "budget_spent", f"{len(recent)} failed logins in the last {window / 60:.0f} min", recent[0] + window - now
    return "ok", None, 0.0


class LoginGate:
    """The login record of one (url, username), in memory and, with `record_file`, shared on disk."""

    def __init__(self, key: str, source: PasswordSource, record_file: Path | None = None,
                 ban_window_seconds: float = 3600.0, clock=time.time):
        self.key = key
        self.source = source
        self.record_file = Path(record_file) if record_file else None
        self.clock = clock
        self._lock = threading.Lock()
        self._record = {"failures": [], "refused": None, "banned_until": None, "window": ban_window_seconds,
                        "max_fail": 5, "refused_at": None}
        self._file_stamp = None
        self._refused_digest: str | None = None  # in memory only: the refused password's SHA-256
        self._reopened_at: float | None = None  # SIGHUP / qbt login: refusals before this may be retried

    # the record

    def _load(self) -> None:
        if self.record_file is None:
            return
        try:
            st = os.stat(self.record_file)
        except FileNotFoundError:
            stamp = None
        else:
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        data = {}
        if stamp is not None:
            try:
                data = json.loads(self.record_file.read_text()).get(self.key) or {}
            except (OSError, ValueError, AttributeError):
                data = {}
        fresh = {"failures": [], "refused": None, "banned_until": None, "window": self._record["window"],
                 "max_fail": self._record["max_fail"], "refused_at": None}
        fresh.update({k: v for k, v in data.items() if k in fresh})
        if fresh["refused"] is None:
            self._refused_digest = None  # another seedward logged in (or was told to try again)
        self._record = fresh

    def _save(self) -> None:
        if self.record_file is None:
            return
        from .manifests import atomic_write

        lock_path = self.record_file.with_name(self.record_file.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                everything = json.loads(self.record_file.read_text())
            except (OSError, ValueError):
                everything = {}
            if not isinstance(everything, dict):
                everything = {}
            everything[self.key] = self._record
            atomic_write(self.record_file, (json.dumps(everything, indent=2, sort_keys=True) + "\n").encode(), 0o600)
            st = os.stat(self.record_file)
            self._file_stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        finally:
            os.close(fd)

    # decisions

    def check(self) -> tuple[str, str | None, float]:
        """(state, why, wait): may a login be tried now? Cheap: no network, a stat or two."""
        with self._lock:
            self._load()
            now = self.clock()
            identity = self.source.identity()
            record = self._record
            reopened = self._reopened_at is not None and self._reopened_at > (record["refused_at"] or 0)
            if reopened:
                record = {**record, "refused": None}
            state, why, wait = decide(record, now, identity, record["window"], record["max_fail"])
            if state == "ok" and self._refused_digest is not None and not reopened:
                changed = self.source.changed_at()
                if changed is not None and now - changed < SETTLE_SECONDS:
                    return "waiting_for_password", "the password file is being changed", SETTLE_SECONDS
                if self._digest() == self._refused_digest:
                    return "waiting_for_password", "the password was refused", 0.0
            return state, why, wait

    def _digest(self) -> str | None:
        try:
            return hashlib.sha256(self.source.read().encode()).hexdigest()
        except ConfigError:
            return None

    def refused(self, banned: bool) -> None:
        with self._lock:
            self._load()
            now = self.clock()
            rec = self._record
            rec["failures"] = [t for t in rec["failures"] if t > now - rec["window"]] + [now]
            rec["refused"] = self.source.identity()
            rec["refused_at"] = now
            if banned:
                rec["banned_until"] = now + rec["window"]
            self._refused_digest = self._digest()
            self._save()

    def succeeded(self, ban_seconds: float | None = None, max_fail: int | None = None) -> None:
        """A login went through: qBittorrent forgot our failures; remember its ban settings."""
        with self._lock:
            self._load()
            rec = self._record
            changed = rec["failures"] or rec["refused"] is not None or rec["banned_until"]
            if ban_seconds:
                changed = changed or rec["window"] != ban_seconds
                rec["window"] = float(ban_seconds)
            if max_fail is not None:
                changed = changed or rec["max_fail"] != max_fail
                rec["max_fail"] = int(max_fail)
            rec.update(failures=[], refused=None, banned_until=None, refused_at=None)
            self._refused_digest = None
            self._reopened_at = None
            if changed:
                self._save()

    def reopen(self) -> None:
        """SIGHUP or `seedward qbt login`: the password refused so far may be tried again (the budget and a ban
        still hold; a refusal after this one closes the gate again)."""
        self._reopened_at = self.clock()  # no lock: SIGHUP's handler calls this on the main thread

    def status(self) -> dict:
        state, why, wait = self.check()
        with self._lock:
            rec = self._record
            now = self.clock()
            return {"state": state, "reason": why,
                    "failures_in_window": len([t for t in rec["failures"] if t > now - rec["window"]]),
                    "max_failures_per_window": MAX_FAILURES, "ban_window_seconds": rec["window"],
                    "next_try_in": round(wait, 1) if state in ("budget_spent", "banned") else None,
                    "password_source": "file" if self.source.file is not None else "inline"}
