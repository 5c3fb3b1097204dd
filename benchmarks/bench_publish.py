"""Benchmark companion torrent creation (`companion.publish.build`) against mktorrent (v1) and
libtorrent's own creation (lt.create_torrent + lt.set_piece_hashes, nothing else).

    python benchmarks/bench_publish.py --size 2G [--piece auto|4M] [--repeat 2] [--dir /tmp] [--no-write]

Generates a job-like output folder (one large "remaster" plus a few small files and provenance
sidecars) of --size bytes, then from the page cache: seedward's build for v1, v2 and hybrid,
libtorrent's bare creation for the same kinds, and mktorrent (v1, all cores). Every torrent made is
parsed back and checked to describe the same files. Best of --repeat runs. Writes the `publish`
section of benchmarks/RESULTS.md unless --no-write.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import libtorrent as lt  # noqa: E402

from benchmarks.common import drop_note, load_note, machine, parse_size, stamp, table, write_section  # noqa: E402
from companion.publish import KIND_FLAGS, auto_piece_size, build, parse_piece_size  # noqa: E402
from companion.torrent import load_torrent  # noqa: E402

LOAD = ""  # set by main(): how busy the machine was when the run started

ORIGINAL = {"id": "ab" * 20, "name": "original", "info_hash_v1": "ab" * 20, "info_hash_v2": "cd" * 32}


def make_content(root: Path, size: int) -> Path:
    """A companion folder: output/remaster.mkv (most bytes), output/subs/*.srt, provenance/*.json."""
    content = root / "film.seedward-bench"
    (content / "output" / "subs").mkdir(parents=True, exist_ok=True)
    (content / "provenance" / "subs").mkdir(parents=True, exist_ok=True)
    small = {f"output/subs/{lang}.srt": 40_000 for lang in ("en", "fr", "de")}
    big = size - sum(small.values())
    block = 16 * 2**20
    with open(content / "output" / "remaster.mkv", "wb") as fh:
        left = big
        while left > 0:
            step = min(block, left)
            fh.write(os.urandom(step))
            left -= step
    for rel, n in small.items():
        (content / rel).write_bytes(os.urandom(n))
    for rel in ["remaster.mkv", *[r.removeprefix("output/") for r in small]]:
        (content / "provenance" / f"{rel}.provenance.json").write_text('{"schema": "seedward.provenance/1"}\n')
    return content


def bare_libtorrent(content: Path, piece: int, kind: str) -> bytes:
    ct = lt.create_torrent(lt.list_files(str(content)), piece, KIND_FLAGS[kind])
    lt.set_piece_hashes(ct, str(content.parent))
    return lt.bencode(ct.generate())


def best(fn, repeat: int):
    times, value = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times), value


def check_same_files(raw: bytes, content: Path) -> None:
    meta = load_torrent(raw)
    want = sorted((str(p.relative_to(content.parent)), p.stat().st_size) for p in content.rglob("*") if p.is_file())
    got = sorted((f.path, f.size) for f in meta.real_files)
    if want != got:
        raise SystemExit(f"torrent does not describe the folder: {got[:3]} vs {want[:3]}")


def main() -> None:
    global LOAD
    LOAD = load_note()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="64M")
    ap.add_argument("--piece", default="auto")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    size = parse_size(args.size)
    piece = parse_piece_size(args.piece) or auto_piece_size(size)
    work = Path(tempfile.mkdtemp(prefix="bench-publish-", dir=args.dir))
    try:
        t0 = time.perf_counter()
        content = make_content(work, size)
        print(f"payload {size / 2**30:.2f} GiB written in {time.perf_counter() - t0:.1f}s; piece {piece // 1024} KiB",
              file=sys.stderr)
        rows = []
        for kind in ("v1", "v2", "hybrid"):
            ours, raw = best(lambda: build(content, original=ORIGINAL, job_id="0" * 16, kind=kind, piece_size=piece),
                             args.repeat)
            check_same_files(raw, content)
            bare, raw2 = best(lambda: bare_libtorrent(content, piece, kind), args.repeat)
            check_same_files(raw2, content)
            rows.append([f"seedward publish build ({kind})", f"{ours:.2f}", f"{size / ours / 1e6:.0f}"])
            rows.append([f"libtorrent create_torrent + set_piece_hashes ({kind})", f"{bare:.2f}",
                         f"{size / bare / 1e6:.0f}"])
            print(f"{kind}: seedward {ours:.2f}s, libtorrent {bare:.2f}s", file=sys.stderr)
        out = work / "mk.torrent"

        def mktorrent():
            out.unlink(missing_ok=True)
            subprocess.run(["mktorrent", "-l", str(piece.bit_length() - 1), "-a", "http://127.0.0.1:1/announce",
                            "-t", str(os.cpu_count() or 2), "-o", str(out), str(content)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            return out.read_bytes()

        mk, raw3 = best(mktorrent, args.repeat)
        check_same_files(raw3, content)
        rows.append([f"mktorrent 1.1 -t {os.cpu_count()} (v1)", f"{mk:.2f}", f"{size / mk / 1e6:.0f}"])
        print(f"mktorrent {mk:.2f}s", file=sys.stderr)
        body = "\n".join([
            f"Companion torrent creation for a {size / 2**30:.2f} GiB job output (one large file, 3 subtitles, "
            f"4 provenance sidecars), piece size {piece // 1024} KiB (`--piece-size auto`), best of {args.repeat}.",
            "",
            f"- when: {stamp()}",
            f"- machine: {machine()}; {LOAD}",
            f"- {drop_note()}",
            "",
            table(["what", "seconds", "MB/s"], rows),
            "",
            "seedward's build is libtorrent's creation plus the comment and the `seedward` info field, so the two "
            "rows of a kind should match; v2/hybrid also hash SHA-256 merkle trees (hybrid: SHA-1 too).",
        ])
        print(body)
        if not args.no_write:
            write_section("publish", body)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
