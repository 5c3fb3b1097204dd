"""Benchmark a restore drill: RTO in its parts, beside `cp` of the payload and libtorrent's plain recheck.

    python benchmarks/bench_drill.py --size 2G [--piece 4M] [--dir /tmp] [--no-swarm] [--no-write]

Generates a multi-file payload of --size bytes and its hybrid torrent (libtorrent), catalogs and
snapshots it into a fresh store, then drills the snapshot (restore into scratch, SHA-256 of every
file, isolated libtorrent recheck; and, unless --no-swarm, a second drill with the swarm proof).
Beside it: `cp -r` of the payload to a fresh folder, `sha256sum` of the payload, and libtorrent's
recheck of the original payload with its default settings (one hashing thread). Writes the `drill`
section of benchmarks/RESULTS.md unless --no-write.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import libtorrent as lt  # noqa: E402

from benchmarks.common import drop_note, load_note, machine, make_payload, parse_size, run_timed, stamp, table, write_section  # noqa: E402
from companion import ltsession  # noqa: E402
from companion.catalog import Catalog  # noqa: E402
from companion.config import Settings  # noqa: E402
from companion.drill import Drill  # noqa: E402
from companion.home import Home  # noqa: E402
from companion.store import Store  # noqa: E402
from companion.torrent import load_torrent  # noqa: E402

LOAD = ""  # set by main(): how busy the machine was when the run started


def make_torrent(content: Path, piece: int) -> bytes:
    ct = lt.create_torrent(lt.list_files(str(content)), piece, 0)
    lt.set_piece_hashes(ct, str(content.parent))
    return lt.bencode(ct.generate())


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def rate(size: int, seconds: float | None) -> str:
    return "-" if not seconds else f"{size / seconds / 1e6:.0f}"


def main() -> int:
    global LOAD
    LOAD = load_note()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="64M", help="payload size (e.g. 64M, 2G)")
    ap.add_argument("--piece", default="4M", help="piece size (default 4M)")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where to work (needs ~4x --size free)")
    ap.add_argument("--no-swarm", action="store_true", help="skip the drill with the swarm proof")
    ap.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = ap.parse_args()
    size, piece = parse_size(args.size), parse_size(args.piece)
    needed = size * (5 if not args.no_swarm else 4)
    if shutil.disk_usage(args.dir).free < needed:
        print(f"bench_drill: {args.dir} needs {needed:,} bytes free", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="bench-drill-", dir=args.dir))
    try:
        print(f"writing {size:,} bytes of payload in {work}", file=sys.stderr)
        content = make_payload(work / "seeding", size)
        t = time.perf_counter()
        raw = make_torrent(content, piece)
        create_s = time.perf_counter() - t
        meta = load_torrent(raw)

        home = Home(work / "home").ensure()
        settings = Settings()
        settings.drill.scratch = str(work / "scratch")
        settings.drill.timeout_seconds = 3600.0
        cat = Catalog(home.catalog_db)
        store = Store.open(home.store, cat)
        t = time.perf_counter()
        snap = store.snapshot(meta, content.parent, "manual")
        snapshot_s = time.perf_counter() - t
        print(f"snapshot {snap.id[:12]} in {snapshot_s:.2f}s", file=sys.stderr)

        drill = Drill(cat, store, home, settings)
        plain = drill.run(meta.id)
        if not plain.ok:
            print(f"bench_drill: drill failed: {plain.error} {plain.bad_files} {plain.bad_pieces[:10]}",
                  file=sys.stderr)
            return 1
        swarm = None if args.no_swarm else drill.run(meta.id, swarm=True)
        if swarm is not None and not swarm.ok:
            print(f"bench_drill: swarm drill failed: {swarm.error}", file=sys.stderr)
            return 1

        cp_dest = work / "cp"
        cp_s = run_timed(["cp", "-r", str(content), str(cp_dest)])
        shutil.rmtree(cp_dest)
        files = sorted(str(p) for p in content.iterdir())
        sha_s = run_timed(["sha256sum", *files])
        t = time.perf_counter()
        bad = ltsession.recheck(raw, content.parent, timeout=3600.0)
        recheck_plain_s = time.perf_counter() - t
        assert bad == [], bad
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = [
        ["drill: restore (store -> scratch)", fmt(plain.restore_seconds), rate(size, plain.restore_seconds)],
        ["drill: verify (SHA-256 vs catalog, hashed as the restore wrote)", fmt(plain.verify_seconds), "-"],
        ["drill: recheck (isolated libtorrent, hashing_threads = cores)", fmt(plain.recheck_seconds),
         rate(size, plain.recheck_seconds)],
        ["**drill RTO** (restore + verify + recheck)", f"**{plain.rto_seconds:.2f}**", rate(size, plain.rto_seconds)],
    ]
    if swarm is not None:
        rows += [
            ["drill --swarm: RTO", fmt(swarm.rto_seconds), rate(size, swarm.rto_seconds)],
            ["drill --swarm: swarm proof (loopback download + recheck)", fmt(swarm.swarm_seconds),
             rate(size, swarm.swarm_seconds)],
        ]
    rows += [
        ["`cp -r` of the payload", fmt(cp_s), rate(size, cp_s)],
        ["`sha256sum` of the payload", fmt(sha_s), rate(size, sha_s)],
        ["libtorrent plain recheck of the payload (default settings)", fmt(recheck_plain_s), rate(size, recheck_plain_s)],
        ["(setup) snapshot into the store", fmt(snapshot_s), rate(size, snapshot_s)],
        ["(setup) torrent creation (libtorrent)", fmt(create_s), rate(size, create_s)],
    ]
    body = "\n".join([
        "## Restore drill",
        "",
        f"{stamp()} · {machine()}",
        "",
        f"Payload: {size / 2**30:.2f} GiB in 8 files, hybrid torrent, {piece // 2**20} MiB pieces, "
        f"{meta.num_pieces} pieces. `python benchmarks/bench_drill.py --size {args.size} --piece {args.piece}`.",
        "",
        table(["step", "seconds", "MB/s"], rows),
        "",
        drop_note() + " " + LOAD,
        "RTO is what a real restore costs before the payload is proven; the swarm proof comes on top.",
    ])
    print(body)
    if not args.no_write:
        write_section("drill", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
