"""Benchmark `seedward check` against libtorrent's own recheck, from disk (cold) and from the page
cache (warm), with libtorrent's hashing_threads = 1 (qBittorrent's default) and = cores.

    python benchmarks/bench_check.py --size 2G [--piece 4M] [--repeat 3] [--dir DIR] [--no-write] [--no-cold]

Generates a multi-file payload of --size bytes (8 files of random bytes) and a v1 and a hybrid
torrent of it (libtorrent), then for each torrent, each cache state and each of --repeat rounds
(the tools take turns within a round, so a burst of load hits them all):
libtorrent's recheck in a process of its own (benchmarks/lt_recheck.py: an isolated session;
the time is the check alone, from add_torrent to the checked alert) with hashing_threads 1 and
= cores; the real `seedward check --json` command (the whole process: interpreter start, imports,
load, scan, report); and the engine in-process (Scanner.full_scan, what the protect job's verifying
read runs). Cold: `sync; echo 3 > /proc/sys/vm/drop_caches` before every run (needs root; else
--no-cold). Warm: the payload read once (cat) before every run. Figures are medians. Also: the
CPU each hash costs here, one core (what bounds the ratio: seedward computes libtorrent's hashes
plus the SHA-256 of every file and xxh3 per segment), and the xxh3-only quick rescan. Writes the
`check` section of benchmarks/RESULTS.md unless --no-write.
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import libtorrent as lt  # noqa: E402
import xxhash  # noqa: E402

from benchmarks.common import (load_note, machine, make_payload, parse_size, run_measured, stamp, table,  # noqa: E402
                               write_section)
from companion.quickscan import quick_scan  # noqa: E402
from companion.scan import Scanner  # noqa: E402
from companion.torrent import list_files, load_torrent  # noqa: E402

HERE = Path(__file__).resolve().parent
CORES = os.cpu_count() or 2
TARGET = 1.15


def make_torrent(content: Path, piece: int, kind: str, out: Path) -> Path:
    flags = {"v1": lt.create_torrent.v1_only, "hybrid": 0}[kind]
    ct = lt.create_torrent(list_files(content), piece, flags)
    lt.set_piece_hashes(ct, str(content.parent))
    out.write_bytes(lt.bencode(ct.generate()))
    return out


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def warm(files: list[str]) -> None:
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)


def lt_check(torrent: Path, save: Path, threads: int, whole: bool = False) -> tuple[float, float]:
    """libtorrent's recheck: (seconds of the check alone, or of its whole process; CPU seconds)."""
    wall, cpu, _, out = run_measured([sys.executable, str(HERE / "lt_recheck.py"), str(torrent), str(save), str(threads)])
    doc = json.loads(out)
    if doc["bad_pieces"]:
        raise SystemExit(f"libtorrent found {doc['bad_pieces']} bad pieces in {torrent.name}")
    return (wall if whole else doc["seconds"]), cpu


def seedward_check(torrent: Path, save: Path) -> tuple[float, float]:
    exe = shutil.which("seedward") or str(Path(sys.executable).parent / "seedward")
    wall, cpu, _, out = run_measured([exe, "check", str(torrent), str(save), "--json"])
    if not json.loads(out)["ok"]:
        raise SystemExit(f"seedward check found damage in {torrent.name}")
    return wall, cpu


def engine_scan(meta, save: Path) -> tuple[float, float]:
    c, t = own_cpu(), time.perf_counter()
    result = Scanner().full_scan(meta, save)
    wall = time.perf_counter() - t
    if not result.ok:
        raise SystemExit("Scanner.full_scan found damage")
    return wall, own_cpu() - c


def hash_costs() -> dict[str, float]:
    """Nanoseconds of one core per payload byte for each hash, as the engine calls them."""
    data = memoryview(os.urandom(4 * 2**20))
    out = {}
    jobs = {
        "SHA-1": lambda: hashlib.sha1(data).digest(),
        "SHA-256 (whole file)": lambda: hashlib.sha256(data).digest(),
        "SHA-256 per 16 KiB block": lambda: [hashlib.sha256(data[i : i + 16384]).digest()
                                             for i in range(0, len(data), 16384)],
        "xxh3-64": lambda: xxhash.xxh3_64_intdigest(data),
    }
    for name, job in jobs.items():
        job()
        t = time.thread_time()
        for _ in range(25):
            job()
        out[name] = (time.thread_time() - t) / (25 * len(data)) * 1e9
    return out


def main() -> int:
    load = load_note()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2G", help="payload size (e.g. 64M, 2G); default 2G")
    ap.add_argument("--piece", default="4M", help="piece size; default 4M")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per measurement (the median is kept)")
    ap.add_argument("--dir", default=None, help="where to write the payload (default: a temp dir)")
    ap.add_argument("--no-cold", action="store_true", help="skip the runs with the page cache dropped")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = ap.parse_args()
    size, piece = parse_size(args.size), parse_size(args.piece)
    cold_ok = not args.no_cold and os.geteuid() == 0
    caches = (["cold"] if cold_ok else []) + ["warm"]

    work = Path(tempfile.mkdtemp(prefix="seedward-bench-check-", dir=args.dir))
    rows, figures = [], {}
    try:
        content = make_payload(work, size)
        torrents = {k: make_torrent(content, piece, k, work / f"{k}.torrent") for k in ("v1", "hybrid")}
        files = sorted(str(p) for p in content.iterdir())
        print(f"payload {size / 2**30:.2f} GiB in {len(files)} files", file=sys.stderr)
        for kind in ("v1", "hybrid"):
            meta = load_torrent(torrents[kind])
            for cache in caches:
                runs: dict[str, list] = {}
                tools = {
                    "libtorrent recheck, hashing_threads 1": lambda: lt_check(torrents[kind], work, 1),
                    f"libtorrent recheck, hashing_threads {CORES}": lambda: lt_check(torrents[kind], work, CORES),
                    f"libtorrent, hashing_threads {CORES}, whole process": lambda: lt_check(torrents[kind], work,
                                                                                           CORES, whole=True),
                    "`seedward check --json` (whole command)": lambda: seedward_check(torrents[kind], work),
                    "`Scanner.full_scan` (in-process engine)": lambda: engine_scan(meta, work),
                }
                names = list(tools)
                for r in range(args.repeat):
                    # The order turns each round: cold runs on this VM vary by +-20 % with the state of
                    # its disk (cached on the host), so no tool keeps the same place in every round.
                    for name in names[r % len(names):] + names[: r % len(names)]:
                        drop_caches() if cache == "cold" else warm(files)
                        runs.setdefault(name, []).append(tools[name]())
                base = statistics.median(w for w, _ in runs[f"libtorrent recheck, hashing_threads {CORES}"])
                for name, got in runs.items():
                    wall = statistics.median(w for w, _ in got)
                    cpu = statistics.median(c for _, c in got)
                    figures[(kind, cache, name)] = wall
                    rows.append([kind, cache, name, f"{wall:.2f}", f"{min(w for w, _ in got):.2f}",
                                 f"{size / wall / 1e9:.2f}", f"{cpu:.2f}", f"{wall / base:.2f}"])
                    print(f"{kind:6} {cache:4} {name:44} {wall:6.2f} s  cpu {cpu:5.2f}  x{wall / base:.2f}",
                          file=sys.stderr)
        meta = load_torrent(torrents["hybrid"])
        warm(files)
        full = Scanner().full_scan(meta, work)
        baseline = {f.entry.index: {s.piece: s.xxh3 for s in f.segments} for f in full.files}
        quick = []
        for _ in range(max(3, args.repeat)):
            warm(files)
            t = time.perf_counter()
            assert quick_scan(meta, work, baseline).ok
            quick.append(time.perf_counter() - t)
        quick_s = statistics.median(quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    costs = hash_costs()
    lt_ns = {"v1": costs["SHA-1"], "hybrid": costs["SHA-1"] + costs["SHA-256 per 16 KiB block"]}
    extra = costs["SHA-256 (whole file)"] + costs["xxh3-64"]
    verdicts = []
    for kind in ("v1", "hybrid"):
        floor = (lt_ns[kind] + extra) / lt_ns[kind]
        for cache in caches:
            base = figures[(kind, cache, f"libtorrent recheck, hashing_threads {CORES}")]
            proc = figures[(kind, cache, f"libtorrent, hashing_threads {CORES}, whole process")]
            one = figures[(kind, cache, "libtorrent recheck, hashing_threads 1")]
            cmd = figures[(kind, cache, "`seedward check --json` (whole command)")]
            eng = figures[(kind, cache, "`Scanner.full_scan` (in-process engine)")]
            verdicts.append(
                f"- {kind}, {cache}: engine {eng:.2f} s vs libtorrent {base:.2f} s with {CORES} hashing threads: "
                f"{eng / base:.2f}x (target <= {TARGET}x: {'met' if eng / base <= TARGET else 'NOT met'}); vs "
                f"{one:.2f} s with 1: {eng / one:.2f}x. Whole processes: `seedward check` {cmd:.2f} s vs "
                f"libtorrent's {proc:.2f} s ({cmd / proc:.2f}x).")
        verdicts.append(f"- {kind}: seedward's hashes cost {floor:.2f}x libtorrent's CPU here (table below): when "
                        f"libtorrent keeps all {CORES} cores busy (warm), no engine computing them can come closer "
                        f"than {floor:.2f}x its time on this machine.")
    cost_rows = [[name, f"{ns:.3f}", f"{1 / ns:.2f}"] for name, ns in costs.items()]
    body = "\n".join([
        "## check: `seedward check` vs libtorrent's recheck, cold and warm",
        "",
        f"{stamp()}; {machine()}. {load} Medians of {args.repeat} rounds; in each round the tools take turns, in an order that turns by one place each round (cold runs vary by +-20 % with the state of the VM's disk, which its host caches).",
        f"Payload {size / 2**30:.2f} GiB in 8 files of random bytes, piece size {piece // 2**20} MiB, torrents made by "
        "libtorrent. Cold: page cache dropped before every run (`sync; echo 3 > /proc/sys/vm/drop_caches`); warm: "
        "the payload read once before every run. libtorrent runs in a process of its own (benchmarks/lt_recheck.py) "
        "and is timed from add_torrent to its checked alert; `seedward check` is the whole command (interpreter "
        "start, imports, load, scan, JSON report); the engine row is Scanner.full_scan in-process (the protect job's "
        "verifying read). GB/s = payload bytes / wall seconds; CPU s = user + system of all threads; x = time / "
        f"libtorrent's with hashing_threads {CORES}.",
        "",
        table(["torrent", "cache", "run", "median s", "best s", "GB/s", "CPU s", "x"], rows),
        "",
        *verdicts,
        f"- quick rescan (`quick_scan`, hybrid, warm): {quick_s:.2f} s, {size / quick_s / 1e9:.2f} GB/s.",
        "",
        "One core's cost of each hash on this machine (ns per byte, and GB/s):",
        "",
        table(["hash", "ns/B", "GB/s"], cost_rows),
        "",
        "libtorrent computes SHA-1 per piece (v1) and, for hybrid torrents, SHA-256 per 16 KiB block too; "
        "seedward computes the same plus the SHA-256 of every whole file (what `sha256sum` prints, kept in the "
        "catalog and manifests) and xxh3 per piece-aligned segment (the quick rescan's baseline).",
        "",
        f"Command: `flock /tmp/seedward-bench.lock python benchmarks/bench_check.py --size {args.size} "
        f"--piece {args.piece} --repeat {args.repeat}`.",
    ])
    if args.no_write:
        print(body)
    else:
        write_section("check", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
