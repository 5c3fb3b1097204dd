"""Reconciliation at service start: what changed, or was left half done, while nobody watched.

Every state is looked at:
- protected, damaged, healing: each payload file's size, mtime and inode against the catalog;
  the suspects (and only them) are quick-verified through the drift monitor;
- damaged and healing: every file is verified again whatever its stat says (a heal interrupted
  by kill -9, a drift that was being retried), and handled like any drift;
- heals recorded as running: finished as `interrupted` (their torrents are among the above);
- holds (torrents seedward stopped): the qBittorrent steps executor finishes them from the
  catalog; a hold on a torrent that is `protected` is verified, then released;
- pending: the service's protect jobs, requeued by the queue and the sync loop;
- baseline_bad, excluded, removed: nothing to reconcile (no baseline to compare with).
"""

import logging
import os
import time
from dataclasses import dataclass, field

from ..catalog import trust

log = logging.getLogger(__name__)

BASELINE_STATES = ("protected", "damaged", "healing")


@dataclass(frozen=True)
class Suspect:
    torrent_id: str
    file_index: int
    reason: str  # missing | size | mtime | inode | never stat'ed


@dataclass
class Reconciled:
    suspects: list[Suspect] = field(default_factory=list)
    reverified: list[str] = field(default_factory=list)  # damaged / healing / held torrents verified again
    interrupted_heals: int = 0


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


def find_suspects(catalog, states=BASELINE_STATES) -> list[Suspect]:
    out = []
    for row in trust.watched_files(catalog, states):
        try:
            st = os.lstat(os.path.join(row["save_path"], row["path"]))
        except FileNotFoundError:
            st = None
        except OSError as exc:
            log.warning("cannot stat %s: %s", row["path"], exc.strerror)
            continue
        why = diff_stat(row, st)
        if why:
            out.append(Suspect(row["torrent_id"], row["file_index"], why))
    return out


def reconcile(monitor) -> Reconciled:
    """Feed every suspect to the monitor (it stops, verifies and responds as for a live event), and
    have every torrent left damaged, healing or held verified again."""
    cat = monitor.catalog
    done = Reconciled()
    done.interrupted_heals = trust.finish_interrupted_heals(
        cat, "the service stopped during this heal; the torrent is verified again at start")
    done.suspects = find_suspects(cat)
    now = time.monotonic()
    for s in done.suspects:
        monitor.suspect(s.torrent_id, s.file_index, now, force=True)
    states = {r["id"]: r["protection"] for r in cat.list_torrents(include_removed=False)}
    held = set(trust.holds(cat))
    for tid, state in sorted(states.items()):
        if state in ("damaged", "healing") or (tid in held and state == "protected"):
            monitor.retry_now(tid, f"left {state}{' and stopped by seedward' if tid in held else ''} "
                              "when the service stopped")
            done.reverified.append(tid)
    if done.suspects or done.reverified or done.interrupted_heals:
        log.warning("reconcile: %d files changed while the service was down; %d torrents verified again",
                    len(done.suspects), len(done.reverified))
        cat.add_event(None, "reconcile", f"{len(done.suspects)} payload files changed while the service was down, "
                      f"{len(done.reverified)} torrents left damaged, healing or stopped by seedward, "
                      f"{done.interrupted_heals} heals interrupted; verifying them", level="warning",
                      files=[(s.torrent_id, s.file_index, s.reason) for s in done.suspects[:100]],
                      torrents=done.reverified[:100])
    return done
