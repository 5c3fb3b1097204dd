"""Benchmark archive tiers: `seedward archive create` and `archive restore` of already-compressed
media (random bytes) beside p7zip's `7z` (AES-256, header encryption, copy, same volume size) and
`par2 create` (par2cmdline-turbo, the same block size and recovery count as the set's PAR2 files).

    python benchmarks/bench_archive.py --size 2G [--volume-mb 64] [--dir /tmp] [--no-write]

Makes a payload of --size bytes in 8 `.mkv` files of random bytes, catalogs it and snapshots it into
the store (not timed), then times (wall clock, one run each): archive create of a weekly set to a
local rclone remote (7z volumes from the store's chunks, PAR2 while the volumes upload, hashes, the
rest of the upload; each phase reported),
`7z a` of the payload, `par2 create` over the 7z volumes, archive restore (download, SHA-256 checks,
decrypt, unpack, SHA-256 of every member against the catalog) and `7z x`. Everything lives next to
the payload (same filesystem). Writes the `archive` section of benchmarks/RESULTS.md unless --no-write.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import libtorrent as lt  # noqa: E402

from benchmarks.common import load_note, machine, make_payload as common_payload, parse_size, stamp, table, write_section  # noqa: E402
from companion.archive.create import create_set  # noqa: E402
from companion.archive.par2 import par2_binary  # noqa: E402
from companion.archive.remote import Remote  # noqa: E402
from companion.archive.restore import restore_set  # noqa: E402
from companion.cli.context import Context  # noqa: E402
from companion.protect import catalog_torrent  # noqa: E402
from companion.store import Store  # noqa: E402
from companion.torrent import load_torrent  # noqa: E402

LOAD = ""  # set by main(): how busy the machine was when the run started

PASS = "benchmark passphrase"


def make_torrent(content: Path) -> Path:
    ct = lt.create_torrent(lt.list_files(str(content)), 4 * 2**20, 0)
    lt.set_piece_hashes(ct, str(content.parent))
    out = content.parent / "media.torrent"
    out.write_bytes(lt.bencode(ct.generate()))
    return out


def run(cmd, stdin: str | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, input=stdin, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def main() -> None:
    global LOAD
    LOAD = load_note()
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="64M")
    ap.add_argument("--volume-mb", type=int, default=64)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="bench-archive-", dir=args.dir))
    try:
        home = work / "home"
        home.mkdir()
        (home / "config.toml").write_text(f"[archive]\nvolume_mb = {args.volume_mb}\n")
        content = make_payload(work / "data", size)
        meta = load_torrent(make_torrent(content))
        ctx = Context(home)
        catalog_torrent(ctx.catalog, ctx.manifests, meta, content.parent, reason="bench")
        store = Store.for_home(ctx.home, ctx.settings, ctx.catalog)
        store.snapshot(meta, content.parent, "manual")
        remote = Remote(str(work / "remote"))
        (work / "remote").mkdir()

        t = time.perf_counter()
        made = create_set(home=ctx.home, settings=ctx.settings, catalog=ctx.catalog, manifests=ctx.manifests,
                          store=store, tier="weekly", remote=remote, passphrase=PASS)
        create_s = time.perf_counter() - t
        assert made.uploaded, made.error
        folder = work / "remote" / made.tier / made.set_id
        doc = json.loads((folder / "set.json").read_text())

        z = work / "p7zip"
        z.mkdir()
        sevenzip_s = run(["7z", "a", "-t7z", "-mx=0", "-mhe=on", f"-v{args.volume_mb}m", "-p", str(z / "media.7z"),
                          str(content)], stdin=f"{PASS}\n{PASS}\n")
        vols = sorted(z.glob("media.7z.*"))
        p = doc["par2"]
        blocks = sum(len(s["volumes"]) for s in p["sets"]) * p["blocks_per_volume"]
        count = max(1, -(-blocks * p["redundancy"] // 100))
        par2_s = run([par2_binary(), "create", "-q", "-q", f"-s{p['block_size']}", f"-c{count}", "-n1",
                      str(z / "media.par2"), *map(str, vols)])

        t = time.perf_counter()
        res = restore_set(remote=remote, set_ref=made.set_id, to=work / "restored", passphrase=PASS,
                          work=work / "restore-work", catalog=ctx.catalog)
        restore_s = time.perf_counter() - t
        unzip_s = run(["7z", "x", f"-o{work / 'p7zip-x'}", str(vols[0])], stdin=f"{PASS}\n")
        ctx.close()

        gib = size / 2**30
        phases_c = ", ".join(f"{k} {v:.1f}" for k, v in made.seconds.items())
        phases_r = ", ".join(f"{k} {v:.1f}" for k, v in res.seconds.items())
        rows = [
            ["seedward archive create (weekly, local rclone remote)", f"{create_s:.1f}", f"{gib / create_s * 1024:.0f}",
             f"{made.volumes} volumes, PAR2 {p['strategy']} {p['redundancy']}%: {phases_c}"],
            ["`7z a -mx=0 -mhe=on -p` (p7zip 16.02, AES, copy)", f"{sevenzip_s:.1f}", f"{gib / sevenzip_s * 1024:.0f}",
             f"{len(vols)} volumes"],
            ["`par2 create` over the 7z volumes (turbo, same blocks)", f"{par2_s:.1f}", f"{gib / par2_s * 1024:.0f}",
             f"-s{p['block_size']} -c{count}"],
            ["7z + par2 (the seed's pipeline, no staging/upload)", f"{sevenzip_s + par2_s:.1f}",
             f"{gib / (sevenzip_s + par2_s) * 1024:.0f}", ""],
            ["seedward archive restore (verify, decrypt, unpack, verify)", f"{restore_s:.1f}",
             f"{gib / restore_s * 1024:.0f}", phases_r],
            ["`7z x` (p7zip)", f"{unzip_s:.1f}", f"{gib / unzip_s * 1024:.0f}", ""],
        ]
        body = "\n".join([
            f"## Archive tiers ({stamp()})",
            "",
            f"Machine: {machine()}. {LOAD}",
            f"Payload: {size / 2**30:.2f} GiB of random bytes in 8 `.mkv` files (already-compressed media:"
            f" stored, not compressed), volumes of {args.volume_mb} MiB, one wall-clock run each, page cache warm.",
            "",
            table(["what", "seconds", "MiB/s", "notes"], rows),
            "",
            "create = py7zr reading the snapshot's verified chunks from the store (AES-256, header"
            " encryption, copy) + PAR2 (the volumes upload meanwhile) + SHA-256 of every volume + rclone copy"
            " of the rest; restore = rclone copy + SHA-256 of every volume + py7zr decrypt/unpack + SHA-256 of"
            " every member against the catalog.",
        ])
        print(body)
        if not args.no_write:
            write_section("archive", body)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def make_payload(root: Path, size: int, files: int = 8) -> Path:
    """Already-compressed media: random bytes named as video files."""
    return common_payload(root, size, files, folder="media", name="episode {i:02d}.mkv")


if __name__ == "__main__":
    main()

