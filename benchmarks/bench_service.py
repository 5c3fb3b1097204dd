"""Scale benchmark of the service: N small torrents in one private qbittorrent-nox.

Measures the time from the first add to every torrent protected, the service's peak RSS, its
CPU while idle, a restart's full resync (no re-hash), and the hook's latency (socket and spool).

    python benchmarks/bench_service.py --size 1000      # --size: number of torrents
"""

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import load_note, machine, serve, stamp, table, wait_for, write_section  # noqa: E402
from companion.control import request  # noqa: E402
from companion.home import Home  # noqa: E402
from companion.demo.private_qbt import QbtProcess  # noqa: E402
from tests.helpers import make_torrent, write_payload  # noqa: E402

BIN = Path(sys.executable).parent


def ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def counts(db: Path) -> tuple[int, int, int]:
    """(protected torrents, open jobs, verification runs) read straight from the catalog."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        protected = con.execute("SELECT COUNT(*) FROM torrents WHERE protection = 'protected'").fetchone()[0]
        open_jobs = con.execute("SELECT COUNT(*) FROM queue WHERE state IN ('queued', 'running')").fetchone()[0]
        runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        return protected, open_jobs, runs
    finally:
        con.close()


def median_ms(argv: list[str], runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def hook_latency(home: Path, runs: int = 20) -> float:
    return median_ms([str(BIN / "seedward-hook"), "--home", str(home), "finished", "ab" * 20, "-", "bench", "/tmp",
                      "/tmp/bench"], runs)


def main() -> int:
    load = load_note()  # how busy the machine was when the run started
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1000, help="number of torrents (default 1000)")
    ap.add_argument("--file-kb", type=int, default=64, help="payload size of each torrent in KiB")
    ap.add_argument("--idle-seconds", type=float, default=30.0, help="how long idle CPU is measured")
    ap.add_argument("--workdir", type=Path, help="keep files here (default: a temp folder)")
    ap.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = ap.parse_args()

    root = Path(args.workdir or tempfile.mkdtemp(prefix="seedward-bench-service-"))
    data = root / "data"
    home = Home(root / "home").ensure()
    print(f"making {args.size} torrents of {args.file_kb} KiB in {data}", flush=True)
    torrents = []
    (root / "torrents").mkdir(exist_ok=True)
    for i in range(args.size):
        content = write_payload(data, {f"t{i:05}.bin": args.file_kb * 1024}, seed=i) / f"t{i:05}.bin"
        torrents.append(make_torrent(content, piece_size=16384, kind=("v1", "hybrid")[i % 2],
                                     out=root / "torrents" / f"t{i:05}.torrent"))
    with QbtProcess(root / "qbittorrent") as qbt:
        home.config.write_text(f'[qbittorrent]\nurl = "{qbt.url}"\nusername = "{qbt.username}"\npoll_seconds = 2.0\n'
                               '\n[protection.default]\nlevel = "catalog"\n\n[service]\njobs = 2\n')
        proc = serve(home, {"QBITTORRENTAPI_PASSWORD": qbt.password})
        try:
            t0 = time.perf_counter()
            for start in range(0, len(torrents), 50):
                batch = [p.read_bytes() for p in torrents[start:start + 50]]
                qbt.client.torrents_add(torrent_files=batch, save_path=str(data), is_skip_checking=True)
            added = time.perf_counter() - t0
            wait_for(lambda: (c := counts(home.catalog_db))[0] == args.size and c[1] == 0, 3600, "every torrent protected")
            protected = time.perf_counter() - t0
            runs_before = counts(home.catalog_db)[2]
            rss = peak_rss_mb(proc.pid)
            time.sleep(3)  # let the last tag calls and manifest commits settle
            c0, w0 = ticks(proc.pid), time.perf_counter()
            time.sleep(args.idle_seconds)
            idle_cpu = (ticks(proc.pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.perf_counter() - w0) * 100
            socket_ms = hook_latency(home.root)
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)

            t1 = time.perf_counter()
            proc = serve(home, {"QBITTORRENTAPI_PASSWORD": qbt.password})
            wait_for(lambda: (s := request(home, "status", timeout=60))["service"]["qbittorrent"]["syncs"] > 0
                     and s["service"]["queue"] == {"queued": 0, "running": 0}, 600, "the resync")
            resync = time.perf_counter() - t1
            rehashed = counts(home.catalog_db)[2] - runs_before
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        spool_home = root / "spool-home"
        spool_ms = hook_latency(spool_home)
        python_ms = median_ms([sys.executable, "-c", "pass"])
        shutil.rmtree(spool_home, ignore_errors=True)

    mb = args.size * args.file_kb / 1024
    rows = [
        ["torrents added (API, 50 per call)", f"{args.size} x {args.file_kb} KiB", f"{added:.1f} s"],
        ["first add -> all protected", f"{mb:.0f} MiB hashed", f"{protected:.1f} s ({args.size / protected:.0f} torrents/s)"],
        ["service peak RSS", "", f"{rss:.0f} MiB"],
        ["service CPU while idle", f"{args.idle_seconds:.0f} s, poll 2 s", f"{idle_cpu:.2f} % of one core"],
        ["restart -> full resync, idle", f"re-hashed torrents: {rehashed}", f"{resync:.1f} s"],
        ["seedward-hook, service up (socket)", "median of 20", f"{socket_ms:.0f} ms"],
        ["seedward-hook, service down (spool, 2 fsyncs)", "median of 20", f"{spool_ms:.0f} ms"],
        ["for scale: `python -c pass`", "median of 20", f"{python_ms:.0f} ms"],
    ]
    body = "\n".join([
        f"## Service at scale ({args.size} torrents)",
        "",
        f"{stamp()}; {machine()}; qbittorrent-nox {qbt_version()}.",
        f"{load} `seedward serve` as its own process,",
        "2 hashing jobs, level `catalog`; qBittorrent told to skip its own check (payloads are correct).",
        "",
        table(["what", "scale", "result"], rows),
    ])
    print(body)
    if not args.no_write:
        write_section("service", body)
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def qbt_version() -> str:
    out = subprocess.run(["qbittorrent-nox", "--version"], capture_output=True, text=True)
    return out.stdout.strip().split()[-1] if out.stdout.strip() else "?"


if __name__ == "__main__":
    sys.exit(main())
