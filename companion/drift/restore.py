"""`seedward restore ID` in place: the drift response on demand. Finds the damaged pieces by a
quick verify, keeps the drifted bytes in the quarantine folder, stops the torrent in qBittorrent,
writes back only those pieces from the snapshot, rechecks when sizes changed, and resumes.

Through the running service when there is one (op `restore`), so the service's own watch does
not take the repair for drift; else directly, with qBittorrent when it answers."""

import logging
import sys
from dataclasses import asdict

from ..control import request
from ..errors import EXIT_DAMAGE, EXIT_OK, Error, QbtError, ServiceNotRunning
from .detect import detect_drift, select_files
from .respond import Responder

log = logging.getLogger(__name__)


def restore_in_place(catalog, responder: Responder, tid: str, *, snapshot_id: str | None = None,
                     files=None) -> dict:
    """Heal the damaged pieces of one torrent from a snapshot. Returns a JSON-ready report."""
    from ..locate import catalog_meta

    meta, save_path = catalog_meta(catalog, tid)
    found = detect_drift(catalog, tid, select_files(meta, files), meta=meta)
    report = {"id": tid, "name": meta.name, "save_path": str(save_path), "snapshot": snapshot_id,
              "files": {d.entry.path: d.drift.kind for d in found.damages}}
    report["dry_run"] = False
    if found.ok:
        report.update(outcome="intact", pieces=[], bytes_written=0, healed=None)
        return report
    out = responder.respond(meta, save_path, found.damages, reason="restore", response="heal",
                            snapshot_id=snapshot_id)
    report.update({k: v for k, v in asdict(out).items() if k not in ("torrent_id", "response")})
    report["snapshot"] = out.snapshot_id or snapshot_id
    # The same shape as the offline store repair's report.
    report["healed"] = ({"bytes": out.bytes_written, "pieces": out.pieces, "seconds": out.timings.get("respond")}
                        if out.outcome == "healed" else None)
    return report


def run_restore(args, ctx, tid: str, snapshot_id: str, store) -> int:
    """The CLI side: through the service, else locally."""
    try:
        report = request(ctx.home, "restore", timeout=3600, id=tid, snapshot=snapshot_id, files=args.files)
        report["via"] = "service"
    except ServiceNotRunning:
        qbt = _qbt(ctx.settings)
        responder = Responder(ctx.catalog, ctx.settings, ctx.home.ensure().quarantine, qbt=qbt,
                              read_chunk=store.read_chunk,
                              recheck_timeout=ctx.settings.drift.recheck_timeout_seconds)
        report = restore_in_place(ctx.catalog, responder, tid, snapshot_id=snapshot_id, files=args.files)
        report["via"] = "local" if qbt is not None else "local, without qBittorrent"
    if args.json:
        from ..cli.context import print_json

        print_json(report)
    else:
        _print(report)
    if report["outcome"] in ("intact", "healed"):
        return EXIT_OK
    return report.get("exit_code") or EXIT_DAMAGE


def _qbt(settings):
    from ..qbt import Qbt

    try:
        qbt = Qbt.from_settings(settings.qbittorrent)
        qbt.connect()
        return qbt
    except QbtError as exc:
        print(f"seedward: {exc}; writing back without stopping or rechecking the torrent", file=sys.stderr)
        return None


def _print(r: dict) -> None:
    snap = (r.get("snapshot") or "")[:12]
    if r["outcome"] == "intact":
        print(f"{r['name']}: intact, nothing to restore")
        return
    for path, kind in r["files"].items():
        print(f"  {kind:13} {path}")
    if r["outcome"] == "healed":
        steps = ", ".join(f"{k} {v:.2f}s" for k, v in r.get("timings", {}).items() if isinstance(v, (int, float)))
        print(f"{r['name']}: wrote back {len(r['pieces'])} pieces ({r['bytes_written']:,} bytes) from snapshot {snap}"
              f"{', qBittorrent rechecked it' if r.get('recheck') else ''} [{steps}] ({r['via']})")
        print(f"  drifted bytes kept in {r['quarantine']}")
    else:
        print(f"{r['name']}: not restored: {r.get('error') or r['outcome']}", file=sys.stderr)


def restore_op(monitor, responder: Responder):
    """The service's control op `restore`: {id, snapshot, files} -> the report."""

    def op(message: dict) -> dict:
        tid = monitor.catalog.resolve_id(str(message.get("id", "")))
        with monitor.lock:
            if tid in monitor.busy:
                raise Error(f"{tid[:12]} is being checked or healed right now; try again when it is done")
            monitor.busy.add(tid)
        try:
            return restore_in_place(monitor.catalog, responder, tid, snapshot_id=message.get("snapshot"),
                                    files=message.get("files"))
        finally:
            with monitor.lock:
                monitor.busy.discard(tid)

    return op
