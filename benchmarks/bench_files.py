"""Benchmark a torrent of many tiny files: `seedward check` against libtorrent's recheck, time and
peak memory of each process.

    python benchmarks/bench_files.py --files 100000 [--max-file 4K] [--piece 256K] [--repeat 3] [--dir DIR] [--no-write]

Generates --files files of random sizes (1 byte to --max-file) in folders of 100, a v1 and a v2
torrent of them (libtorrent), then for each torrent and each of --repeat rounds (the two take
turns): libtorrent's recheck in a process of its own (benchmarks/lt_recheck.py, hashing_threads =
cores) and the real `seedward check --json` command. Warm runs read the payload into the page cache
just before each run: libtorrent's recheck leaves the files it checked out of the page cache
(fincore: ~1% of their pages stay), so whatever ran after it would read from disk. Cold runs (unless
--no-cold; root) drop the page cache first. seedward's bytecode is compiled first (`compileall`),
as an installed package's is. Each figure: wall seconds of the whole process and its peak RSS
(getrusage of the child), medians. Targets (issue 15): `seedward check` within 3x libtorrent's time
and 2x its memory. Writes the `files` section of benchmarks/RESULTS.md unless --no-write.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import libtorrent as lt  # noqa: E402

from benchmarks.common import load_note, machine, parse_size, run_measured, stamp, table, write_section  # noqa: E402
from companion.torrent import list_files  # noqa: E402

HERE = Path(__file__).resolve().parent
CORES = os.cpu_count() or 2


def make_payload(root: Path, count: int, max_file: int) -> tuple[Path, int]:
    rnd = random.Random(15)
    content = root / "many"
    total = 0
    for i in range(count):
        folder = content / f"d{i // 100:05d}"
        if i % 100 == 0:
            folder.mkdir(parents=True)
        size = rnd.randint(1, max_file)
        (folder / f"f{i:07d}.bin").write_bytes(rnd.randbytes(size))
        total += size
    return content, total


def main() -> int:
    load = load_note()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000, help="number of files; default 100000")
    ap.add_argument("--max-file", default="4K", help="largest file; sizes are uniform from 1 byte; default 4K")
    ap.add_argument("--piece", default="256K", help="piece size; default 256K")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (the median is kept)")
    ap.add_argument("--dir", default=None, help="where to write the payload (default: a temp dir)")
    ap.add_argument("--no-cold", action="store_true", help="skip the runs with the page cache dropped")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = ap.parse_args()
    max_file, piece = parse_size(args.max_file), parse_size(args.piece)
    exe = shutil.which("seedward") or str(Path(sys.executable).parent / "seedward")

    work = Path(tempfile.mkdtemp(prefix="seedward-bench-files-", dir=args.dir))
    rows, verdicts = [], []
    try:
        t0 = time.perf_counter()
        content, total = make_payload(work, args.files, max_file)
        torrents = {}
        for kind, flags in (("v1", lt.create_torrent.v1_only), ("v2", lt.create_torrent.v2_only)):
            ct = lt.create_torrent(list_files(content), piece, flags)
            lt.set_piece_hashes(ct, str(work))
            torrents[kind] = work / f"{kind}.torrent"
            torrents[kind].write_bytes(lt.bencode(ct.generate()))
        print(f"{args.files} files, {total / 1e6:.0f} MB, torrents made in {time.perf_counter() - t0:.0f}s",
              file=sys.stderr)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "companion")],
                       stdout=subprocess.DEVNULL, check=True)
        caches = ["warm"] + ([] if args.no_cold or os.geteuid() != 0 else ["cold"])

        def prepare(cache: str) -> None:
            if cache == "warm":
                subprocess.run(["sh", "-c", f"find '{content}' -type f -exec cat {{}} + > /dev/null"], check=True)
            else:
                subprocess.run(["sync"], check=True)
                Path("/proc/sys/vm/drop_caches").write_text("3\n")

        for kind, torrent in torrents.items():
            for cache in caches:
                lt_runs, sw_runs = [], []
                for _ in range(args.repeat):
                    prepare(cache)
                    wall, _, rss, out = run_measured([sys.executable, str(HERE / "lt_recheck.py"), str(torrent),
                                                      str(work), str(CORES)])
                    assert json.loads(out)["bad_pieces"] == 0
                    lt_runs.append((wall, rss / 1024, json.loads(out)["seconds"]))
                    prepare(cache)
                    wall, _, rss, out = run_measured([exe, "check", str(torrent), str(work), "--json"])
                    doc = json.loads(out)
                    assert doc["ok"] and len(doc["files"]) == args.files
                    sw_runs.append((wall, rss / 1024))
                lt_wall = statistics.median(r[0] for r in lt_runs)
                lt_rss = statistics.median(r[1] for r in lt_runs)
                lt_check = statistics.median(r[2] for r in lt_runs)
                sw_wall = statistics.median(r[0] for r in sw_runs)
                sw_rss = statistics.median(r[1] for r in sw_runs)
                size_kb = torrent.stat().st_size / 1024
                rows.append([kind, cache, f"libtorrent recheck, hashing_threads {CORES} (its process)",
                             f"{lt_wall:.2f}", f"{lt_check:.2f}", f"{lt_rss:.0f}", f".torrent {size_kb:.0f} KiB"])
                rows.append([kind, cache, "`seedward check --json` (its process)", f"{sw_wall:.2f}", "", f"{sw_rss:.0f}",
                             f"{sw_wall / lt_wall:.2f}x time, {sw_rss / lt_rss:.2f}x memory"])
                verdicts.append(f"- {kind}, {cache}: {sw_wall / lt_wall:.2f}x libtorrent's time (target <= 3x: "
                                f"{'met' if sw_wall <= 3 * lt_wall else 'NOT met'}), {sw_rss / lt_rss:.2f}x its memory "
                                f"(target <= 2x: {'met' if sw_rss <= 2 * lt_rss else 'NOT met'}).")
                print(rows[-2], rows[-1], file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    body = "\n".join([
        f"## files: a torrent of {args.files:,} tiny files, `seedward check` vs libtorrent",
        "",
        f"{stamp()}; {machine()}. {load} Medians of {args.repeat} rounds, the two taking turns.",
        f"{args.files:,} files of 1 byte to {max_file // 1024} KiB ({total / 1e6:.0f} MB) in folders of 100, piece size "
        f"{piece // 1024} KiB, torrents made by libtorrent. Warm: the payload read into the page cache just before "
        "every run (libtorrent's recheck leaves the files it checked out of the page cache, so a run after it reads "
        "from disk); cold: the page cache dropped before every run. Seconds are the wall "
        "time of each whole process (interpreter start, load, check; seedward also writes its JSON report of every "
        "file); `check s` is libtorrent's check alone; MiB is the process's peak RSS.",
        "",
        table(["torrent", "cache", "run", "seconds", "check s", "peak MiB", "note"], rows),
        "",
        *verdicts,
        "",
        f"Command: `flock /tmp/seedward-bench.lock python benchmarks/bench_files.py --files {args.files} "
        f"--max-file {args.max_file} --piece {args.piece} --repeat {args.repeat}`.",
        "",
        "Up to the run of 2026-12-01 15:33 UTC this benchmark warmed the payload once, before the first round: every seedward run "
        "came right after a libtorrent recheck and so read from disk (8.98x, 5.09x were that).",
    ])
    if args.no_write:
        print(body)
    else:
        write_section("files", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
