"""The verify-and-respond step of drift: quick-verify files of one torrent against the catalog's
baseline, record what was checked (and new stats of files whose bytes still match), then hand
real drift to the responder; an intended write (a lease) is recorded instead, and a damaged or
healing torrent that verifies intact is released through qBittorrent's steps. `m` is the
DriftMonitor; the caller holds the torrent's claim."""

from ..catalog import drift as rows
from ..catalog import trust
from .classify import FALSE_ALARM
from .detect import detect_drift


def check_files(m, tid: str, indices: set[int] | None, *, detected_at: float | None = None,
                reason: str = "drift", rate: float | None = None):
    """Quick-verify these files of one torrent, classify, respond. The caller holds the claim.
    Returns the Outcome (or None when every file still matches)."""
    if not m.catalog.get_files(tid):  # no baseline to compare with (healed before its first one)
        if m.responder.reprotect is not None:
            m.responder.reprotect(tid)
        return None
    found = detect_drift(m.catalog, tid, indices, meta=m.meta(tid),
                         rate=m.rate if rate is None else rate)
    meta = found.meta
    for qf in found.result.files:
        drift = found.drifts[qf.file_index]
        if drift.kind != FALSE_ALARM or qf.stat is None:
            continue
        rec = rows.file_record(m.catalog, tid, qf.file_index)
        rows.update_file_stat(m.catalog, tid, qf.file_index, qf.stat)
        if rec is not None and (qf.stat.nlink > 1) != ((rec["nlink"] or 1) > 1):
            m.watch.set_hardlinked(tid, qf.file_index, qf.stat.nlink > 1)
            m.responder.tag_hardlinked(tid, bool(trust.hardlinked(m.catalog).get(tid)))
            if qf.stat.nlink > 1:
                path = next(e.path for e in meta.real_files if e.index == qf.file_index)
                m.responder.emit("hardlinked", tid, f"{meta.name}: {path} now has {qf.stat.nlink} hard links: "
                                    "an edit through another link changes the seed", "warning", path=path)
    rows.record_checks(m.catalog, tid, {i: d.kind == FALSE_ALARM for i, d in found.drifts.items()},
                       kind="quick", reason=reason)
    damages = found.damages
    lease = m.intended.pop(tid, None)
    if lease is not None and damages:
        if m.on_intended is not None:
            m.on_intended(meta, found.save_path, lease)
        else:
            m.catalog.add_event(tid, "intended", f"{meta.name}: write under lease {lease.id} by "
                                   f"{lease.operator} to {', '.join(d.entry.path for d in damages)}; not healed",
                                   level="info", lease=lease.id)
        m.responder.release(tid)
        return None
    if not damages:
        whole = indices is None or _all_files(m, tid, indices)
        if whole and m.responder.state(tid) in ("damaged", "healing"):
            intact_again(m, tid)
        else:
            m.responder.release(tid)
        if reason == "drift":
            m.catalog.add_event(tid, "false_alarm", f"{meta.name}: files changed on disk but every piece "
                                   "still matches", level="info")
        return None
    outcome = m.responder.respond(meta, found.save_path, damages, detected_at=detected_at, reason=reason)
    m.outcomes = (m.outcomes + [outcome])[-100:]
    return outcome

def intact_again(m, tid: str) -> None:
    """A damaged or healing torrent verifies intact (a heal finished before a crash, a retry, a
    fix from outside): qBittorrent rechecks it (its view may be stale) and seeds it again."""
    steps = m.responder.steps
    if steps is not None and steps.held(tid):
        m.responder.set_state(tid, "healing")
        steps.settle(tid, recheck=True, because="verified intact; qBittorrent rechecks and starts it")
        if not steps.held(tid):
            m.responder.set_state(tid, "protected")
    else:
        m.responder.set_state(tid, "protected")
    m.responder.emit("intact", tid, "every file matches its baseline again", "info")

def _all_files(m, tid: str, indices) -> bool:
    return {f["file_index"] for f in m.catalog.get_files(tid)} <= set(indices)
