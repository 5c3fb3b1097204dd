"""`seedward restore ID` in place: the drift response on demand. Finds the damaged pieces by a
quick verify against the catalog's baseline (always the torrent's own bytes), keeps the drifted
bytes in the quarantine folder, writes back only those pieces from the snapshot (verified against
the torrent before anything is written: else nothing changes), and has qBittorrent stop, recheck
when sizes changed, and start the torrent (queued when qBittorrent does not answer).

Through the running service when there is one (op `restore`), so the service's own watch does
not take the repair for drift; else the CLI runs it with a responder of its own."""

import logging
from dataclasses import asdict

from ..errors import Error
from .detect import detect_drift, select_files
from .respond import Responder

log = logging.getLogger(__name__)

STEPS_WAIT = 120.0  # seconds a restore waits for qBittorrent's part before reporting it queued


def plan_restore(catalog, tid: str, files=None):
    """What an in-place restore would write (the quick verify; nothing is changed)."""
    from ..locate import catalog_meta

    meta, save_path = catalog_meta(catalog, tid)
    return detect_drift(catalog, tid, select_files(meta, files), meta=meta)


def restore_in_place(catalog, responder: Responder, tid: str, *, snapshot_id: str | None = None,
                     files=None, dry_run: bool = False, steps_wait: float = STEPS_WAIT) -> dict:
    """Heal the damaged pieces of one torrent from a snapshot. Returns a JSON-ready report."""
    found = plan_restore(catalog, tid, files)
    meta, save_path = found.meta, found.save_path
    report = {"id": tid, "name": meta.name, "save_path": str(save_path), "snapshot": snapshot_id,
              "files": {d.entry.path: d.drift.kind for d in found.damages}, "dry_run": dry_run,
              "pieces": found.bad_pieces}
    report["damage"] = {"segments": sorted((d.entry.index, s.piece) for d in found.damages for s in d.segments(meta)),
                        "files": report["files"]}
    if found.ok or dry_run:
        report.update(outcome="intact" if found.ok else "damaged", bytes_written=0, healed=None, qbittorrent=None)
        return report
    before = responder.state(tid)
    held = responder.steps is not None and responder.steps.held(tid)
    out = responder.respond(meta, save_path, found.damages, reason="restore", response="heal",
                            snapshot_id=snapshot_id)
    if out.outcome == "failed" and before not in ("protected", "damaged", "healing"):
        # Refused with nothing written: a torrent drift does not watch (a leased edit) stays as it was.
        responder.set_state(tid, before)
        if responder.steps is not None and not held:
            responder.steps.settle(tid, because="restore refused; nothing written")
    report.update({k: v for k, v in asdict(out).items() if k not in ("torrent_id", "response")})
    report["snapshot"] = out.snapshot_id or snapshot_id
    report["healed"] = ({"bytes": out.bytes_written, "pieces": out.pieces, "seconds": out.timings.get("respond")}
                        if out.outcome == "healed" else None)
    steps = responder.steps
    if steps is None:
        report["qbittorrent"] = "not asked (no qBittorrent)"
    elif out.outcome == "healed":
        done = steps.wait_done(tid, steps_wait)
        report["qbittorrent"] = "done" if done else f"queued: {', '.join(steps.pending(tid))} ({steps.error or 'waiting'})"
    else:
        report["qbittorrent"] = "held: " + ", ".join(steps.pending(tid) or ["stopped"])
    report["protection"] = responder.state(tid)
    return report


# The `restore` op's fields, checked by the service before the op runs (JSON Schema).
RESTORE_ARGS = {"type": "object", "required": ["op", "id"], "additionalProperties": False, "properties": {
    "op": {"type": "string"}, "id": {"type": "string", "pattern": "^[0-9a-fA-F]{1,64}$"},
    "snapshot": {"type": ["string", "null"], "pattern": "^[0-9a-fA-F]{1,64}$"},
    "files": {"type": ["array", "null"], "maxItems": 100000, "items": {"type": ["string", "integer"], "maxLength": 4096}},
    "dry_run": {"type": "boolean"},
}}


def restore_op(monitor, responder: Responder):
    """The service's control op `restore`: {id, snapshot, files, dry_run} -> the report."""

    def op(message: dict) -> dict:
        tid = monitor.catalog.resolve_id(str(message.get("id", "")))
        with monitor.claimed(tid, wait=10) as mine:
            if not mine:
                raise Error(f"{tid[:12]} is being checked or healed right now; try again when it is done")
            return restore_in_place(monitor.catalog, responder, tid, snapshot_id=message.get("snapshot"),
                                    files=message.get("files"), dry_run=bool(message.get("dry_run")))

    return op
