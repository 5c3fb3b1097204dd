"""The hook spool: events the hook could not hand to the service, one atomic file each.

Standard library only: the hook imports this at qBittorrent's every add/finish and must stay fast.
A file is complete or absent (temp file, fsync, rename); the service drains the folder in name
order (names start with the time in nanoseconds) and deletes each file once the event is in the
catalog's queue, so a crash in between replays the event rather than losing it.

A qBittorrent in a container writes its events into a spool folder shared with it (the instance's
`hook_dir`/spool) through a POSIX sh hook (containers do not all have Python): such an entry is
`NAME.args`, the hook's arguments (event, %I, %J, %N, %D, %F) each ended by a NUL byte, and goes
through the same checks as a JSON entry.

The spool is untrusted input (anyone who can write the home can drop a file there): every entry
is checked (a regular file, at most MAX_EVENT_BYTES, the event schema below) and a bad one is moved
to `spool/bad/` with the reason, so it can neither stop the service nor come back at every sync.
"""

import json
import logging
import os
import secrets
import stat
import time
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".json"
ARGS_SUFFIX = ".args"  # the container hook's entries (NUL-separated arguments)
BAD = "bad"
EVENTS = ("added", "finished")
FIELDS = ("event", "hash", "hash_v2", "name", "save_path", "content_path", "instance")
ARGS = ("event", "hash", "hash_v2", "name", "save_path", "content_path")  # a .args entry's fields, in order
MAX_FIELD = 4096  # characters of a name or path
MAX_EVENT_BYTES = 64 * 1024
MAX_TRIES = 3  # a valid event the service failed on this many times is moved aside too
HEX = frozenset("0123456789abcdef")


class BadEvent(ValueError):
    """A hook event seedward cannot use; the message says why."""


def torrent_id_of(hash_v1: str, hash_v2: str) -> str | None:
    """qBittorrent's torrent hash from the hook's %I / %J ("-" or empty when absent): the v2 hash
    cut to 40 digits when there is one (as qBittorrent does), else the v1 hash."""
    v2 = (hash_v2 or "").strip().lower()
    v1 = (hash_v1 or "").strip().lower()
    if len(v2) == 64 and set(v2) <= HEX:
        return v2[:40]
    if len(v1) == 40 and set(v1) <= HEX:
        return v1
    return None


def check_event(event) -> str:
    """The torrent id of a usable hook event; raises BadEvent saying what is wrong."""
    if not isinstance(event, dict):
        raise BadEvent("not a JSON object")
    unknown = sorted(set(event) - set(FIELDS) - {"op"})
    if unknown:
        raise BadEvent(f"unknown field {unknown[0]!r}")
    if event.get("event") not in EVENTS:
        raise BadEvent(f"event must be 'added' or 'finished', not {event.get('event')!r}")
    for key in FIELDS[1:]:
        value = event.get(key, "")
        if not isinstance(value, str):
            raise BadEvent(f"{key} must be a string, not {type(value).__name__}")
        if len(value) > MAX_FIELD:
            raise BadEvent(f"{key} is longer than {MAX_FIELD} characters")
    instance = event.get("instance", "")
    if instance and not (len(instance) <= 40 and instance[0].isalnum() and all(c.isalnum() or c in "._-" for c in instance)):
        raise BadEvent(f"instance {instance[:40]!r} is not an instance name")
    torrent_id = torrent_id_of(event.get("hash", ""), event.get("hash_v2", ""))
    if torrent_id is None:
        raise BadEvent(f"no valid info hash (%I {event.get('hash', '')[:64]!r}, %J {event.get('hash_v2', '')[:64]!r}:"
                       " 40 or 64 hex digits expected)")
    return torrent_id


def append(spool_dir: Path, event: dict) -> Path:
    """Write one event durably (it must pass check_event). Returns its file."""
    check_event(event)
    spool_dir = Path(spool_dir)
    spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
    tmp = spool_dir / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, json.dumps({k: event[k] for k in FIELDS if k in event}).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    final = spool_dir / name
    os.rename(tmp, final)
    dir_fd = os.open(spool_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


def pending(spool_dir: Path) -> list[Path]:
    """Spooled entries, oldest first (whatever they are: drain checks each)."""
    try:
        names = [n for n in os.listdir(spool_dir) if n.endswith((SUFFIX, ARGS_SUFFIX)) and not n.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(spool_dir) / n for n in sorted(names)]


def read_event(path: Path) -> dict:
    """A spooled event, checked; raises BadEvent (FileNotFoundError when it is already gone)."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise BadEvent("not a regular file")
    if st.st_size > MAX_EVENT_BYTES:
        raise BadEvent(f"{st.st_size} bytes, more than {MAX_EVENT_BYTES}")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        data = os.read(fd, MAX_EVENT_BYTES + 1)
    finally:
        os.close(fd)
    if path.name.endswith(ARGS_SUFFIX):
        event = args_event(data)
    else:
        try:
            event = json.loads(data)
        except ValueError as exc:  # UnicodeDecodeError included
            raise BadEvent(f"not JSON ({exc})") from None
    check_event(event)
    return event


def args_event(data: bytes) -> dict:
    """The event of a container hook's entry: its arguments, each ended by NUL (bytes that are not
    UTF-8 become U+FFFD: names and paths in an event are only shown; qBittorrent's API gives the real ones)."""
    if not data.endswith(b"\0"):
        raise BadEvent("not NUL-terminated arguments (cut short?)")
    parts = data[:-1].split(b"\0")
    if len(parts) < 2:
        raise BadEvent("fewer than two arguments")
    values = [p.decode("utf-8", errors="replace") for p in parts[:len(ARGS)]]
    return dict(zip(ARGS, values + [""] * (len(ARGS) - len(values))))


def move_aside(path: Path, reason: str) -> Path:
    """Move a spool entry to spool/bad/ (never over another one) with a note saying why."""
    bad_dir = path.parent / BAD
    bad_dir.mkdir(mode=0o700, exist_ok=True)
    dest = bad_dir / path.name
    while dest.exists() or dest.is_symlink():
        dest = bad_dir / f"{path.stem}-{secrets.token_hex(2)}{path.suffix}"
    os.rename(path, dest)
    note = dest.with_name(dest.name + ".why")
    fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, (reason + "\n").encode())
    finally:
        os.close(fd)
    return dest


def drain(spool_dir: Path, handle, on_bad=None, tries: dict | None = None) -> int:
    """Call handle(event) for each spooled event, oldest first, deleting each file after its
    handler returned; returns how many were handled. A bad entry is moved to spool/bad/ and
    reported with on_bad(moved_to, reason); never raises for an entry. A handler that fails is
    retried at the next drain, and moved aside after MAX_TRIES failures (`tries` keeps count
    between drains)."""
    tries = {} if tries is None else tries
    done = 0
    for path in pending(spool_dir):
        if tries.get(path.name, 0) > MAX_TRIES:
            continue  # could not even be moved aside: said once, not again
        try:
            event = read_event(path)
        except FileNotFoundError:
            continue
        except (BadEvent, OSError) as exc:
            _reject(path, f"unusable hook event: {exc}", on_bad, tries)
            continue
        try:
            handle(event)
        except Exception as exc:  # noqa: BLE001 - the service keeps going; the file is retried
            tries[path.name] = tries.get(path.name, 0) + 1
            log.warning("%s: the service could not take this spooled event (%s); try %d of %d", path, exc,
                        tries[path.name], MAX_TRIES)
            if tries[path.name] >= MAX_TRIES:
                _reject(path, f"the service failed on it {MAX_TRIES} times: {exc}", on_bad, tries)
            continue
        tries.pop(path.name, None)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        done += 1
    return done


def _reject(path: Path, reason: str, on_bad, tries: dict) -> None:
    try:
        moved = move_aside(path, reason)
    except OSError as exc:  # said once; the entry is skipped from then on
        tries[path.name] = MAX_TRIES + 1
        moved, reason = path, f"{reason}; cannot move it to {BAD}/ ({exc.strerror or exc}): left there, skipped"
    else:
        tries.pop(path.name, None)
    log.warning("%s: %s (now %s)", path, reason, moved)
    if on_bad is not None:
        on_bad(moved, reason)
