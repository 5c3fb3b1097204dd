"""Reconciliation at service start: what changed while nobody was watching.

Compare size, mtime and inode of every watched payload file with the catalog; quick-verify the
suspects (and only them) through the drift monitor, which then responds as to any drift.
"""

import logging
import os
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suspect:
    torrent_id: str
    file_index: int
    reason: str  # missing | size | mtime | inode | never stat'ed


def diff_stat(row, st: os.stat_result | None) -> str | None:
    """Why a file no longer looks as the catalog remembers it, or None (pure)."""
    if st is None:
        return "missing"
    if row["inode"] is None:
        return "never stat'ed"
    if st.st_size != row["size"]:
        return "size"
    if (st.st_ino, st.st_dev) != (row["inode"], row["device"]):
        return "inode"
    if st.st_mtime_ns != row["mtime_ns"]:
        return "mtime"
    return None


def find_suspects(catalog, states=("protected", "damaged")) -> list[Suspect]:
    out = []
    marks = ",".join("?" * len(states))
    rows = catalog.query(
        f"""SELECT f.*, t.save_path FROM files f JOIN torrents t ON t.id = f.torrent_id
            WHERE t.protection IN ({marks}) AND t.removed_at IS NULL AND t.save_path IS NOT NULL""",
        tuple(states),
    )
    for row in rows:
        try:
            st = os.stat(os.path.join(row["save_path"], row["path"]))
        except FileNotFoundError:
            st = None
        except OSError as exc:
            log.warning("cannot stat %s: %s", row["path"], exc.strerror)
            continue
        why = diff_stat(row, st)
        if why:
            out.append(Suspect(row["torrent_id"], row["file_index"], why))
    return out


def reconcile(monitor) -> list[Suspect]:
    """Feed every suspect to the monitor (it stops, verifies and responds as for a live event)."""
    suspects = find_suspects(monitor.catalog)
    now = time.monotonic()
    for s in suspects:
        monitor.suspect(s.torrent_id, s.file_index, now, force=True)
    if suspects:
        log.warning("reconcile: %d files changed while the service was down", len(suspects))
        monitor.catalog.add_event(None, "reconcile", f"{len(suspects)} payload files changed while the service was "
                                  "down; verifying them", level="warning",
                                  files=[(s.torrent_id, s.file_index, s.reason) for s in suspects[:100]])
    return suspects
