"""`seedward verify ID|--all [--full] [--json]`: quick (xxh3 per piece-aligned segment against the
catalog) or full (the torrent's own SHA-1 / SHA-256 hashes). Reports; healing is `seedward restore`
or the service's drift response.

Both modes judge a file the same way: the catalog's baseline is always bytes that matched the
torrent, and the full pass uses it to prove a file's bytes in a failed piece shared with another
file unchanged. A file replaced by a symbolic link is reported, never read through. Drift found
in a `protected` torrent makes it `damaged` (the state must be true; the service heals it); a
full verification that passes records the last-verified time.
"""

import sys

from ..catalog import drift as rows
from ..catalog.db_time import now_iso
from ..drift.detect import detect_drift, not_a_file
from ..errors import EXIT_DAMAGE, EXIT_OK, BadInput
from ..locate import catalog_meta
from ..scan import OK, Scanner
from .context import print_json

BASELINE_STATES = ("protected", "damaged", "healing")  # --all; one ID: any torrent with a kept baseline


def register(sub) -> None:
    p = sub.add_parser("verify", help="verify cataloged payloads (quick xxh3, or --full against the torrent)")
    p.add_argument("id", nargs="?", metavar="ID", help="any unique prefix of an info hash")
    p.add_argument("--all", action="store_true", help="every torrent with a baseline")
    p.add_argument("--full", action="store_true", help="the torrent's own hashes (reads every byte)")
    p.add_argument("--dry-run", action="store_true",
                   help="verify and report; record nothing (no state change, no verification time)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def verify_quick(catalog, tid: str, rate: float = 0.0, progress=None, record: bool = True) -> dict:
    found = detect_drift(catalog, tid, rate=rate, progress=progress)
    entries = {e.index: e for e in found.meta.real_files}
    checks = {i: d.kind == "false_alarm" for i, d in found.drifts.items()}
    if record:
        rows.record_checks(catalog, tid, checks, kind="quick", reason="verify")
    files = [{"path": entries[i].path, "kind": "ok" if checks[i] else d.kind, "pieces": d.pieces,
              "hardlinked": d.hardlinked} for i, d in found.drifts.items()]
    return {"id": tid, "name": found.meta.name, "mode": "quick", "ok": found.ok, "bad_pieces": found.bad_pieces,
            "bytes_read": found.result.bytes_read, "seconds": round(found.seconds, 3), "files": files}


def verify_full(catalog, tid: str, rate: float = 0.0, progress=None, record: bool = True) -> dict:
    meta, save_path = catalog_meta(catalog, tid)
    cataloged = {r["file_index"] for r in catalog.get_files(tid)}  # not the files skipped in qBittorrent
    entries = {e.index: e for e in meta.real_files}
    odd = {i: why for i in cataloged if (why := not_a_file(save_path / entries[i].path))}
    result = Scanner().full_scan(meta, save_path, rate=rate, only_files=cataloged - set(odd),
                                 baseline=rows.baseline_hashes(catalog, tid), progress=progress)
    checks = {f.entry.index: f.status == OK for f in result.files} | {i: False for i in odd}
    if record:
        rows.record_checks(catalog, tid, checks, kind="full", reason="verify")
    bad = set(result.bad_pieces)
    files = [{"path": f.entry.path, "kind": f.status,
              "pieces": sorted(p for p in meta.file_pieces(f.entry) if p in bad)} for f in result.files]
    files += [{"path": entries[i].path, "kind": "replaced", "detail": why, "pieces": list(meta.file_pieces(entries[i]))}
              for i, why in sorted(odd.items())]
    ok = all(checks.values())
    if ok and record:
        catalog.set_protection(tid, catalog.get_torrent(tid)["protection"], last_verified=now_iso())
    return {"id": tid, "name": meta.name, "mode": "full", "ok": ok,
            "bad_pieces": sorted(bad | {p for f in files if f["kind"] == "replaced" for p in f["pieces"]}),
            "bytes_read": result.bytes_read, "seconds": round(result.seconds, 3), "files": files}


def mark_damaged(catalog, report: dict) -> bool:
    """Drift found in a protected torrent: it is `damaged` now (the service heals it)."""
    row = catalog.get_torrent(report["id"])
    if report["ok"] or row is None or row["protection"] != "protected":
        return False
    catalog.set_protection(report["id"], "damaged")
    bad = [f["path"] for f in report["files"] if f["kind"] != "ok"]
    catalog.add_event(report["id"], "damaged", f"{report['name']}: `seedward verify{' --full' if report['mode'] == 'full' else ''}`"
                      f" found drift in {', '.join(bad[:5])}; no longer protected", level="warning",
                      files=bad[:100], pieces=report["bad_pieces"][:100])
    return True


def run(args, ctx) -> int:
    if bool(args.id) == bool(args.all):
        raise BadInput("verify", "give one torrent ID or --all")
    cat = ctx.catalog
    if args.all:
        ids = [r["id"] for r in cat.list_torrents(include_removed=False) if r["protection"] in BASELINE_STATES]
    else:
        tid = cat.resolve_id(args.id)
        if cat.get_torrent(tid)["protection"] not in BASELINE_STATES and not cat.get_files(tid):
            raise BadInput(args.id, f"torrent {tid[:12]} has no verified baseline "
                           f"({cat.get_torrent(tid)['protection']}); run `seedward catalog add` first")
        ids = [tid]
    rate = ctx.settings.service.read_rate_mb * 1e6
    verify = verify_full if args.full else verify_quick
    reports = []
    sizes = {tid: cat.get_torrent(tid)["payload_size"] for tid in ids}
    with ctx.progress.bar("verifying", sum(sizes.values())) as bar:
        done = 0
        for tid in ids:
            bar.describe(f"verifying {cat.get_torrent(tid)['name']}")
            reports.append(verify(cat, tid, rate, progress=lambda n, _total, base=done: bar(base + n),
                                  record=not args.dry_run))
            done += sizes[tid]
    for r in reports:
        r["marked_damaged"] = False if args.dry_run else mark_damaged(cat, r)
    ok = all(r["ok"] for r in reports)
    if args.json:
        print_json({"ok": ok, "dry_run": args.dry_run, "torrents": reports})
    else:
        for r in reports:
            mb = r["bytes_read"] / 1e6
            verdict = "intact" if r["ok"] else "DRIFTED" if r["mode"] == "quick" else "DAMAGED"
            print(f"{r['name']} ({r['id'][:12]}, {r['mode']}): {verdict} [{mb:.1f} MB in {r['seconds']:.2f}s]")
            for f in r["files"]:
                if f["kind"] != "ok":
                    link = ", hard-linked" if f.get("hardlinked") else ""
                    print(f"  {f['kind']:13} {f['path']}  pieces {f['pieces'][:20]}{link}")
        if args.dry_run:
            print("(dry run: nothing recorded)")
        if not ok:
            print("heal in place with `seedward restore ID` (or let the service heal it)", file=sys.stderr)
    return EXIT_OK if ok else EXIT_DAMAGE
