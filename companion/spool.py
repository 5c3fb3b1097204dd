"""The hook spool: events the hook could not hand to the service, one atomic file each.

Stdlib only: the hook imports this at qBittorrent's every add/finish and must stay fast.
A file is complete or absent (temp file, fsync, rename); the service drains the folder in
name order (names start with the time in nanoseconds) and deletes each file once the event
is in the catalog's queue, so a crash in between replays the event rather than losing it.
"""

import json
import logging
import os
import secrets
import time
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".json"


def append(spool_dir: Path, event: dict) -> Path:
    """Write one event durably. Returns its file."""
    spool_dir = Path(spool_dir)
    spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
    tmp = spool_dir / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, json.dumps(event).encode())
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
    """Spooled event files, oldest first."""
    try:
        names = [n for n in os.listdir(spool_dir) if n.endswith(SUFFIX) and not n.startswith(".")]
    except FileNotFoundError:
        return []
    return [Path(spool_dir) / n for n in sorted(names)]


def drain(spool_dir: Path, handle) -> int:
    """Call handle(event) for each spooled event, oldest first, deleting each file after its
    handler returned. A file that is not valid JSON is renamed to *.bad and skipped."""
    done = 0
    for path in pending(spool_dir):
        try:
            event = json.loads(path.read_bytes())
            if not isinstance(event, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            continue
        except ValueError as exc:
            log.warning("%s: unreadable spooled event (%s); kept as %s.bad", path, exc, path.name)
            path.rename(path.with_name(path.name + ".bad"))
            continue
        handle(event)
        path.unlink(missing_ok=True)
        done += 1
    return done
