"""`seedward verify ID|--all [--full] [--json]`: quick (xxh3 per piece-aligned segment against the
catalog) or full (the torrent's own SHA-1 / SHA-256 hashes). Reports; healing is `seedward restore`
or the service's drift response."""

import sys

from ..catalog import drift as rows
from ..drift.detect import detect_drift
from ..errors import EXIT_DAMAGE, EXIT_OK, BadInput
from ..locate import catalog_meta
from ..scan import OK, Scanner
from .context import print_json

BASELINE_STATES = ("protected", "damaged", "healing")


def register(sub) -> None:
    p = sub.add_parser("verify", help="verify cataloged payloads (quick xxh3, or --full against the torrent)")
    p.add_argument("id", nargs="?", metavar="ID", help="any unique prefix of an info hash")
    p.add_argument("--all", action="store_true", help="every torrent with a baseline")
    p.add_argument("--full", action="store_true", help="the torrent's own hashes (reads every byte)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def verify_quick(catalog, tid: str, rate: float = 0.0) -> dict:
    found = detect_drift(catalog, tid, rate=rate)
    entries = {e.index: e for e in found.meta.real_files}
    checks = {i: d.kind == "false_alarm" for i, d in found.drifts.items()}
    rows.record_checks(catalog, tid, checks, kind="quick", reason="verify")
    files = [{"path": entries[i].path, "kind": "ok" if checks[i] else d.kind, "pieces": d.pieces,
              "hardlinked": d.hardlinked} for i, d in found.drifts.items()]
    return {"id": tid, "name": found.meta.name, "mode": "quick", "ok": found.ok, "bad_pieces": found.result.bad_pieces,
            "bytes_read": found.result.bytes_read, "seconds": round(found.seconds, 3), "files": files}


def verify_full(catalog, tid: str, rate: float = 0.0) -> dict:
    meta, save_path = catalog_meta(catalog, tid)
    cataloged = {r["file_index"] for r in catalog.get_files(tid)}  # not the files skipped in qBittorrent
    result = Scanner().full_scan(meta, save_path, rate=rate, only_files=cataloged)
    rows.record_checks(catalog, tid, {f.entry.index: f.status == OK for f in result.files}, kind="full",
                       reason="verify")
    bad = set(result.bad_pieces)
    files = [{"path": f.entry.path, "kind": f.status,
              "pieces": sorted(p for p in meta.file_pieces(f.entry) if p in bad)} for f in result.files]
    return {"id": tid, "name": meta.name, "mode": "full", "ok": result.ok, "bad_pieces": result.bad_pieces,
            "bytes_read": result.bytes_read, "seconds": round(result.seconds, 3), "files": files}


def run(args, ctx) -> int:
    if bool(args.id) == bool(args.all):
        raise BadInput("verify", "give one torrent ID or --all")
    cat = ctx.catalog
    if args.all:
        ids = [r["id"] for r in cat.list_torrents(include_removed=False) if r["protection"] in BASELINE_STATES]
    else:
        tid = cat.resolve_id(args.id)
        if cat.get_torrent(tid)["protection"] not in BASELINE_STATES:
            raise BadInput(args.id, f"torrent {tid[:12]} has no verified baseline "
                           f"({cat.get_torrent(tid)['protection']}); run `seedward catalog add` first")
        ids = [tid]
    rate = ctx.settings.service.read_rate_mb * 1e6
    verify = verify_full if args.full else verify_quick
    reports = [verify(cat, tid, rate) for tid in ids]
    ok = all(r["ok"] for r in reports)
    if args.json:
        print_json({"ok": ok, "torrents": reports})
    else:
        for r in reports:
            mb = r["bytes_read"] / 1e6
            verdict = "intact" if r["ok"] else "DRIFTED" if r["mode"] == "quick" else "DAMAGED"
            print(f"{r['name']} ({r['id'][:12]}, {r['mode']}): {verdict} [{mb:.1f} MB in {r['seconds']:.2f}s]")
            for f in r["files"]:
                if f["kind"] != "ok":
                    link = ", hard-linked" if f.get("hardlinked") else ""
                    print(f"  {f['kind']:13} {f['path']}  pieces {f['pieces'][:20]}{link}")
        if not ok:
            print("heal in place with `seedward restore ID` (or let the service heal it)", file=sys.stderr)
    return EXIT_OK if ok else EXIT_DAMAGE
