"""Hard links followed as they appear: a change of a protected file's link count (inotify
IN_ATTRIB on its folder or its inode, or the rolling stat sweep) flags the file (catalog, event,
qBittorrent's seedward:hardlinked tag) and watches it through its inode, since an edit through
another link (a library's) is not seen by the seed folder's watch. `m` is the DriftMonitor."""

import logging
import os
import time

from ..catalog import drift as rows
from ..catalog import trust

log = logging.getLogger(__name__)


def same_stat(row, st: os.stat_result | None) -> bool:
    """The file looks as the catalog remembers it (size, mtime, inode, device)."""
    if st is None or row["inode"] is None:
        return False
    now = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    return now == (row["size"], row["mtime_ns"], row["inode"], row["device"])


def lstat_or_none(path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot stat %s: %s", path, exc.strerror)
        return None


def attrib(m, tid: str, index: int, at: float, path: str | None = None) -> None:
    """A file's attributes changed: a new or removed hard link (its link count), or a content
    change reported this way (a stat that differs is suspected like a write)."""
    row = rows.file_record(m.catalog, tid, index)
    if row is None:
        return
    file_path = path or os.path.join(m.save_paths.get(tid, ""), row["path"])
    st = lstat_or_none(file_path)
    if st is None or not same_stat(row, st):
        m.suspect(tid, index, at, path=file_path)
        return
    if st.st_nlink != (row["nlink"] or 1):
        count_changed(m, tid, index, row, st.st_nlink)

def count_changed(m, tid: str, index: int, row, nlink: int) -> None:
    """Follow hard links as they appear: flag the file (catalog, tag), watch it through its
    inode, and verify it once (without stopping the torrent) in case a write went through the
    new link before its inode watch existed."""
    was = row["nlink"] or 1
    trust.set_nlink(m.catalog, tid, index, nlink)
    m.watch.set_hardlinked(tid, index, nlink > 1)
    name = row["path"]
    if nlink > 1 and was <= 1:
        m.flagged.add((tid, index))
        m.responder.emit("hardlinked", tid, f"{name} now has {nlink} hard links: an edit through another "
                            "link changes the seed (watched through its inode)", "warning", path=name, nlink=nlink)
    elif nlink <= 1 < was:
        m.responder.emit("unlinked", tid, f"{name} has no other hard link any more", "info", path=name)
    if (nlink > 1) != (was > 1):
        m.responder.tag_hardlinked(tid, bool(trust.hardlinked(m.catalog).get(tid)))
    if nlink > was:
        m.suspect(tid, index, time.monotonic(), force=True, stop=False)
