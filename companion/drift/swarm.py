"""A heal by the swarm: no snapshot holds the damaged pieces, so the drifted copy is kept whole in
the quarantine, qBittorrent is asked to recheck (finding those pieces missing) and to download
them from its peers. The wait for peers runs on its own thread, so other drift is not held up
behind it; a hard-linked file first gets its own inode, so the download does not write into the
library's copy. No peer within the stall time: the torrent stays `damaged` and is tried again
now and then (the monitor's slow retries)."""

import logging
import threading
import time

from ..errors import Error
from .heal import bad_pieces, break_link, quarantine, quarantine_folder

log = logging.getLogger(__name__)


def heal(r, meta, save_path, damages, out, heal_id: int, detected_at: float, began: float) -> None:
    """Start it (the outcome says `healing`); `watch` finishes it on its own thread."""
    tid = meta.id
    out.source = "swarm"
    kept = quarantine(meta, damages, quarantine_folder(r.quarantine_root, tid), keep_whole=True)
    for d in damages:
        if d.drift.hardlinked:
            break_link(d.path)  # qBittorrent must download into the seed's own inode, not the library's
    out.quarantine = str(kept.folder)
    out.recheck = True
    out.outcome = "healing"
    with r.lock:
        r.swarm.add(tid)
    first = ["stop"] if "stop" in r.steps.pending(tid) else []
    r.steps.replace_steps(tid, first + ["recheck_any", "start"],
                          because="healing from the swarm: qBittorrent rechecks and downloads the damaged pieces")
    r.emit("healing", tid, f"{meta.name}: no snapshot; asking the swarm for pieces {out.pieces[:20]}", "info")
    thread = threading.Thread(target=watch, name=f"swarm-{tid[:8]}", daemon=True,
                              args=(r, meta, save_path, damages, out, heal_id, detected_at, began))
    r.swarm_threads = [t for t in r.swarm_threads if t.is_alive()] + [thread]
    thread.start()


def watch(r, meta, save_path, damages, out, heal_id: int, detected_at: float, began: float) -> None:
    """Wait for qBittorrent to have the pieces again, verify them, and record the heal's end.
    r: the Responder; out: its Outcome."""
    tid = meta.id
    t = time.monotonic()
    try:
        done = wait(r, meta)
        out.timings["swarm"] = round(time.monotonic() - t, 4)
        if done and not bad_pieces(meta, save_path, out.pieces):
            r._remember(meta, damages, reason="heal")
            out.outcome = "healed"
            hold = r.steps.info(tid)
            if hold is not None and not hold["resume"]:
                r.steps.replace_steps(tid, ["stop"])
            r.steps.settle(tid, because="healed by the swarm")
            r.set_state(tid, "protected" if not r.steps.held(tid) else "healing")
            r.emit("healed", tid, f"{meta.name}: healed by the swarm; drifted copy kept in {out.quarantine}", "info",
                   timings=out.timings)
            if r.reprotect is not None and not r.catalog.get_files(tid):
                r.reprotect(tid)  # no baseline yet: verify, catalog (and snapshot) it now
            elif r.resnapshot is not None and not r._has_snapshot(tid) and r.policy(tid).level in ("snapshot", "auto"):
                r.resnapshot(tid)
        else:
            out.outcome = "alerted"
            r.set_state(tid, "damaged")
            why = ("still bad after the swarm's copy" if done else "not yet back: the service stopped"
                   if r.stopping.is_set() else "not supplied by any peer")
            r.emit("alert", tid, f"{meta.name}: pieces {out.pieces[:20]} {why}; the torrent is incomplete "
                   f"until they return (drifted copy in {out.quarantine})", "error")
            if r.retry is not None and not r.stopping.is_set():
                r.retry(tid, f"the swarm: {why}", None, slow=True)
    except Error as exc:
        out.outcome, out.error, out.exit_code = "failed", str(exc), exc.exit_code
        r.set_state(tid, "damaged")
        r.emit("heal_failed", tid, f"{meta.name}: heal by the swarm failed: {exc}", "error")
    except Exception as exc:  # the thread must record its end whatever happens
        log.exception("%s: swarm watch failed", tid[:12])
        out.outcome, out.error = "failed", str(exc)
    finally:
        with r.lock:
            r.swarm.discard(tid)
        try:
            r._finish(heal_id, out, detected_at, began)
        except Exception:  # noqa: BLE001
            log.exception("%s: cannot record the swarm heal's end", tid[:12])


def wait(r, meta) -> bool:
    """True once qBittorrent has every piece again; False on a stall, the timeout or the service stopping."""
    began = last_progress_at = time.monotonic()
    last = -1.0
    while time.monotonic() - began < r.swarm_timeout:
        if r.stopping.wait(0.5):
            return False
        if r.steps.pending(meta.id):
            last_progress_at = time.monotonic()  # qBittorrent has not rechecked and started it yet
            continue
        info = r.qbt.torrent(meta.id)
        if info is None:
            return False
        progress = info["progress"]
        if progress >= 1 and not info["state"].startswith("checking"):
            return True
        if progress > last:
            last, last_progress_at = progress, time.monotonic()
            r.emit("heal_progress", meta.id, f"{meta.name}: {progress:.1%} from the swarm", "info", progress=progress)
        if time.monotonic() - last_progress_at > r.swarm_stall:
            return False
    return False
