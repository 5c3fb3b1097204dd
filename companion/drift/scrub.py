"""The scheduled scrub (SnapRAID's model): each run re-verifies a share of the protected payload
bytes, least recently verified files first, under a read-rate limit."""

import logging
import time
from dataclasses import dataclass, field

from ..catalog import drift as rows

log = logging.getLogger(__name__)


@dataclass
class ScrubReport:
    files: int = 0
    bytes: int = 0
    damaged: list[str] = field(default_factory=list)  # torrent ids with drift
    seconds: float = 0.0


def plan_scrub(files: list, share_percent: float) -> list:
    """The files for one run (pure): least recently verified first, until `share_percent` of all
    bytes is covered (at least one file when there is any)."""
    total = sum(f["size"] for f in files)
    budget = total * share_percent / 100.0
    out, used = [], 0
    for f in files:  # already least recently verified first
        if out and used + f["size"] > budget:
            break
        out.append(f)
        used += f["size"]
    return out


def run_scrub(monitor, share_percent: float, read_rate_mb: float) -> ScrubReport:
    """One scrub run through the drift monitor (drift found here gets the same response)."""
    began = time.monotonic()
    planned = plan_scrub(rows.scrub_order(monitor.catalog), share_percent)
    by_torrent: dict[str, set[int]] = {}
    report = ScrubReport()
    for f in planned:
        by_torrent.setdefault(f["torrent_id"], set()).add(f["file_index"])
        report.files += 1
        report.bytes += f["size"]
    rate = read_rate_mb * 1e6 if read_rate_mb > 0 else 0.0
    for tid, indices in by_torrent.items():
        with monitor.claimed(tid) as mine:
            if not mine:
                continue  # being checked or healed right now
            outcome = monitor.check_files(tid, indices, reason="scrub", rate=rate)
        if outcome is not None:
            report.damaged.append(tid)
    report.seconds = time.monotonic() - began
    monitor.catalog.add_event(None, "scrub", f"scrub: {report.files} files, {report.bytes / 1e6:.1f} MB verified, "
                              f"{len(report.damaged)} torrents with drift",
                              level="warning" if report.damaged else "info", seconds=round(report.seconds, 2))
    return report
