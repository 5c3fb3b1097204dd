"""Fleet benchmarks (issue 20), side by side in one run:

1. Catalog: protect throughput (each torrent: a job queued, claimed, its payload verified, the full
   scan recorded, the job finished) and catalog read latency while it runs, for `--torrents`
   torrents sharing `--size` bytes: SQLite with one host, PostgreSQL with one host, PostgreSQL with
   three hosts (three processes, each owning a third, claiming from the one shared queue).
2. Store: a snapshot uploaded to an S3 server (`rclone serve s3`, loopback) and restored from it,
   against `rclone copy` of the same bytes up and down.

    python benchmarks/bench_fleet.py --size 64M --torrents 2000     # a quick validation
    python benchmarks/bench_fleet.py --size 2G --torrents 10000     # the final run (lead)
"""

import argparse
import multiprocessing as mp
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import drop_note, load_note, machine, make_payload, parse_size, stamp, table, write_section  # noqa: E402

PIECE = 16384


def make_torrents(work: Path, count: int, size: int) -> list[tuple[Path, Path]]:
    """count torrents of two small files each, `size` bytes in all: (torrent, save path)."""
    import libtorrent as lt

    from companion.torrent import list_files

    data = work / "payloads"
    per = max(2 * PIECE, size // count)
    out = []
    for i in range(count):
        folder = data / f"t{i:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "a.bin").write_bytes(os.urandom(per - per // 3))
        (folder / "b.bin").write_bytes(os.urandom(per // 3))
        ct = lt.create_torrent(list_files(folder), PIECE, lt.create_torrent.v1_only if i % 2 else 0)
        lt.set_piece_hashes(ct, str(data))
        path = work / "torrents" / f"t{i:05d}.torrent"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(lt.bencode(ct.generate()))
        out.append((path, data))
    return out


def host(target: str, owner: str, items, started, results) -> None:
    """One seedward host: queue its torrents, then its worker protects them one by one."""
    from companion.catalog import Catalog
    from companion.scan import Scanner
    from companion.torrent import load_torrent

    cat = Catalog(target, owners=(owner,))
    metas = [(load_torrent(t), save) for t, save in items]
    scanner = Scanner()
    started.wait()
    t0 = time.perf_counter()
    by_id = {}
    for meta, save in metas:
        by_id[meta.id] = (meta, save)
        cat.enqueue("protect", meta.id, reason="bench")
    done = 0
    while (job := cat.claim(("protect",))) is not None:
        meta, save = by_id[job["torrent_id"]]
        result = scanner.full_scan(meta, save)
        cat.record_scan(result, reason="bench", save_path=str(save), protection="protected" if result.ok else "damaged")
        cat.finish(job["id"])
        done += 1
    results.put((owner, done, time.perf_counter() - t0))
    cat.close()


def probe(target: str, ids: list[str], stop: threading.Event, out: list) -> None:
    """Catalog latency while the hosts work: one torrent row and the queue counts, every 20 ms."""
    from companion.catalog import Catalog, views

    cat = Catalog(target, owners=("probe",))
    while not stop.is_set():
        t = time.perf_counter()
        cat.get_torrent(random.choice(ids))
        views.queue_counts(cat)
        out.append(time.perf_counter() - t)
        stop.wait(0.02)
    cat.close()


def catalog_run(target: str, hosts: int, torrents: list, ids: list[str]) -> dict:
    ctx = mp.get_context("fork")
    started, results = ctx.Event(), ctx.Queue()
    parts = [torrents[i::hosts] for i in range(hosts)]
    procs = [ctx.Process(target=host, args=(target, f"host-{i}", parts[i], started, results)) for i in range(hosts)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # every host has loaded its torrents
    lat: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=probe, args=(target, ids, stop, lat))
    t0 = time.perf_counter()
    started.set()
    prober.start()
    got = [results.get(timeout=7200) for _ in procs]
    wall = time.perf_counter() - t0
    stop.set()
    prober.join()
    for p in procs:
        p.join(60)
    done = sum(g[1] for g in got)
    lat.sort()
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: float("nan"))
    return {"done": done, "wall": wall, "rate": done / wall, "p50": pct(0.5), "p95": pct(0.95), "max": pct(1.0)}


def bench_catalog(work: Path, size: int, count: int) -> str:
    from companion.torrent import load_torrent
    from tests.pgserver import PgServer

    torrents = make_torrents(work, count, size)
    ids = [load_torrent(t).id for t, _ in torrents]
    rows = []
    pg = PgServer(fsync=True, synchronous_commit=False, max_connections=40).start()
    try:
        runs = [("SQLite (embedded), 1 host", str(work / "catalog.sqlite"), 1),
                ("PostgreSQL, 1 host", pg.fresh_database("bench1"), 1),
                ("PostgreSQL, 3 hosts", pg.fresh_database("bench3"), 3)]
        for label, target, hosts in runs:
            from companion.catalog import Catalog

            Catalog(target).close()  # migrated before the clock starts
            r = catalog_run(target, hosts, torrents, ids)
            rows.append([label, r["done"], f"{r['wall']:.1f}", f"{r['rate']:.0f}", f"{r['p50']:.2f}",
                         f"{r['p95']:.2f}", f"{r['max']:.1f}"])
            print(rows[-1], flush=True)
    finally:
        pg.stop()
    return table(["catalog", "torrents protected", "seconds", "torrents/s", "read p50 ms", "read p95 ms",
                  "read max ms"], rows)


def bench_store(work: Path, size: int) -> str:
    from companion.catalog import Catalog
    from companion.config import Settings
    from companion.home import Home
    from companion.store import Store
    from companion.store.remote import rclone_binary
    from companion.torrent import load_torrent
    from tests.helpers import make_torrent
    from tests.s3server import S3Server

    work.mkdir(parents=True, exist_ok=True)
    s3 = S3Server().start()
    try:
        s3.bucket("bench")
        conf = s3.client_config(work / "rclone.conf")
        content = make_payload(work / "store-data", size, files=8)
        meta = load_torrent(make_torrent(content, 4 << 20, "hybrid", out=work / "store.torrent"))
        home = Home(work / "home").ensure()
        settings = Settings()
        settings.store.remote = "fleet:bench/store"
        settings.store.rclone_config = str(conf)
        cat = Catalog(home.catalog_db)
        store = Store.for_home(home, settings, cat)
        t = time.perf_counter()
        snap = store.snapshot(meta, work / "store-data", "manual", trust_catalog=False)
        up = time.perf_counter() - t
        t = time.perf_counter()
        store.restore(snap.id, work / "restored")
        down = time.perf_counter() - t
        store.close()
        cat.close()
        env = dict(os.environ, RCLONE_CONFIG=str(conf))
        rc = [rclone_binary(), "copy", "--transfers", "4"]
        t = time.perf_counter()
        subprocess.run([*rc, str(content), "fleet:bench/rclone/payload"], check=True, env=env)
        rup = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run([*rc, "fleet:bench/rclone/payload", str(work / "rclone-down")], check=True, env=env)
        rdown = time.perf_counter() - t
    finally:
        s3.stop()
    mb = size / 1e6
    rows = [["seedward snapshot to S3 (verify + chunk + pack + upload)", f"{up:.2f}", f"{mb / up:.0f}"],
            ["rclone copy up (same bytes)", f"{rup:.2f}", f"{mb / rup:.0f}"],
            ["seedward restore from S3 (download + verify)", f"{down:.2f}", f"{mb / down:.0f}"],
            ["rclone copy down (same bytes)", f"{rdown:.2f}", f"{mb / rdown:.0f}"]]
    return table(["store on object storage", "seconds", "MB/s"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="64M", help="payload bytes (both parts)")
    ap.add_argument("--torrents", type=int, default=10_000, help="torrents in the catalog part")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-", dir=args.work))
    try:
        note = load_note()
        cat = bench_catalog(work / "catalog", size, args.torrents)
        st = bench_store(work / "store", size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mean = size / args.torrents
    body = f"""## Fleet: catalog on PostgreSQL, store on object storage (issue 20)

{stamp()} · {machine()} · `python benchmarks/bench_fleet.py --size {args.size} --torrents {args.torrents}`

{note} {drop_note()}

Protect = per torrent: a job queued, claimed from the shared queue, its payload verified against
its own hashes (full scan), the scan recorded (files, segments, pieces, run), the job finished;
{args.torrents} torrents of {mean / 1024:.0f} KiB on average ({args.size} in all), so the catalog's
cost dominates. Hosts are processes on this machine talking to PostgreSQL over loopback TCP (its own
cluster: fsync on, synchronous_commit off, the analogue of SQLite's WAL with synchronous=NORMAL).
Read latency: one torrent row and the queue counts, read every 20 ms by a separate session while
the hosts work.

{cat}

Store: one {args.size} torrent (8 files, 4 MiB pieces) snapshotted to an S3 server (`rclone serve
s3` on loopback, writing to the local disk) through seedward's rclone-backed store, every byte
verified and chunked on the way; restored from it with every chunk checked; against `rclone copy
--transfers 4` of the same files.

{st}
"""
    write_section("fleet", body)
    print(body)


if __name__ == "__main__":
    main()
