"""Benchmark archive tiers side by side with the tools they are built on, in one run:

  create:  `seedward archive create` (weekly set to a local rclone remote)
           vs `7z a -t7z -mx=0 -mhe=on -v... -p` of the payload + `par2 create` over its volumes
           (par2cmdline-turbo, the set's own PAR2: the same recovery sets, block size and counts)
  restore: `seedward archive restore` (download, SHA-256 of every volume, decrypt, unpack,
           SHA-256 of every member against the catalog) vs `par2 verify` + `7z x` of those volumes

    python benchmarks/bench_archive.py --size 256M [--volume-mb 64] [--runs 3] [--py7zr] [--dir D] [--no-write]

The payload is --size bytes of random data in 8 `.mkv` files (already-compressed media: stored,
not compressed), cataloged and snapshotted into the store first (not timed). Each run does the four
commands one after another, page cache warm; the table gives the median of --runs and every run's
figures. --py7zr adds one create and one restore with the py7zr fallback ([archive] sevenzip =
"py7zr"). Writes the `archive` section of benchmarks/RESULTS.md unless --no-write.
"""

import argparse
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

from benchmarks.common import load_note, machine, make_payload as common_payload, parse_size, stamp, table, write_section  # noqa: E402
from companion.archive import sevenzip_tool  # noqa: E402
from companion.archive.create import create_set  # noqa: E402
from companion.archive.par2 import par2_binary  # noqa: E402
from companion.archive.remote import Remote  # noqa: E402
from companion.archive.restore import restore_set  # noqa: E402
from companion.catalog import archives as records  # noqa: E402
from companion.cli.context import Context  # noqa: E402
from companion.protect import catalog_torrent  # noqa: E402
from companion.torrent import load_torrent  # noqa: E402

PASS = "benchmark passphrase"


def make_torrent(content: Path) -> Path:
    ct = lt.create_torrent(lt.list_files(str(content)), 4 * 2**20, 0)
    lt.set_piece_hashes(ct, str(content.parent))
    out = content.parent / "media.torrent"
    out.write_bytes(lt.bencode(ct.generate()))
    return out


def run(cmd, stdin: str | None = None, cwd=None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, input=stdin, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    return time.perf_counter() - t


def one_run(work: Path, ctx, content: Path, i: int, exe: str) -> dict:
    remote = Remote(str(work / "remote"))
    t = time.perf_counter()
    made = create_set(home=ctx.home, settings=ctx.settings, catalog=ctx.catalog, manifests=ctx.manifests,
                      store=ctx.store, tier="weekly", remote=remote, passphrase=PASS)
    create_s = time.perf_counter() - t
    assert made.uploaded, made.error
    doc = json.loads((work / "remote" / made.tier / made.set_id / "set.json").read_text())
    p = doc["par2"]
    count = sum(s["recovery_blocks"] for s in p["sets"])

    ref = work / f"ref-{i}"
    ref.mkdir()
    z = run([exe, "a", "-t7z", "-mx=0", "-mhe=on", f"-v{doc['volume_size']}b", "-p", str(ref / "media.7z"),
             str(content)], stdin=f"{PASS}\n")
    vols = sorted(ref.glob("media.7z.*"))
    # the same PAR2 as the set's: its block size, and per recovery set the same volumes and count
    par2_c, names = 0.0, []
    for k, rs in enumerate(p["sets"]):
        name = ref / f"media.{k}.par2"
        covered = [str(vols[v]) for v in rs["volumes"] if v < len(vols)]
        par2_c += run([par2_binary(), "create", "-q", "-q", f"-s{p['block_size']}", f"-c{rs['recovery_blocks']}",
                       "-n1", str(name), *covered])
        names.append(name)
    t = time.perf_counter()  # what seedward does for a local destination: the files on disk before "uploaded"
    for f in ref.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    synced = time.perf_counter() - t

    t = time.perf_counter()
    res = restore_set(remote=remote, set_ref=made.set_id, to=work / f"restored-{i}", passphrase=PASS,
                      work=work / "restore-work", catalog=ctx.catalog)
    restore_s = time.perf_counter() - t
    par2_v = sum(run([par2_binary(), "verify", "-q", "-q", str(name)]) for name in names)
    unzip = run([exe, "x", f"-o{work / f'ref-x-{i}'}", str(vols[0])], stdin=f"{PASS}\n")
    for d in (ref, work / f"ref-x-{i}", work / f"restored-{i}", work / "remote" / made.tier / made.set_id):
        shutil.rmtree(d, ignore_errors=True)
    return {"create": create_s, "7z a": z, "par2 create": par2_c, "sync": synced, "restore": restore_s, "par2 verify": par2_v,
            "7z x": unzip, "create_phases": made.seconds, "restore_phases": res.seconds, "volumes": made.volumes,
            "par2": p, "protection": doc["protection"], "count": count, "in_place": len(records.get_set(ctx.catalog, made.set_id)["manifest"].get("read_in_place", []))}


def py7zr_run(work: Path, ctx) -> dict:
    ctx.settings.archive.sevenzip = "py7zr"
    remote = Remote(str(work / "remote"))
    t = time.perf_counter()
    made = create_set(home=ctx.home, settings=ctx.settings, catalog=ctx.catalog, manifests=ctx.manifests,
                      store=ctx.store, tier="weekly", remote=remote, passphrase=PASS)
    create_s = time.perf_counter() - t
    t = time.perf_counter()
    restore_set(remote=remote, set_ref=made.set_id, to=work / "restored-py7zr", passphrase=PASS,
                work=work / "restore-work", catalog=ctx.catalog, sevenzip="py7zr")
    restore_s = time.perf_counter() - t
    ctx.settings.archive.sevenzip = "auto"
    return {"create": create_s, "restore": restore_s}


def main() -> None:
    load = load_note()
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="64M")
    ap.add_argument("--volume-mb", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--py7zr", action="store_true", help="also time the py7zr fallback once")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    size = parse_size(args.size)
    exe = sevenzip_tool.binary("auto")
    if exe is None:
        raise SystemExit("no 7-Zip command (apt-get install 7zip or p7zip-full)")
    version = subprocess.run([exe], capture_output=True, text=True).stdout.strip().splitlines()[0]
    work = Path(tempfile.mkdtemp(prefix="bench-archive-", dir=args.dir))
    try:
        home = work / "home"
        home.mkdir()
        (home / "config.toml").write_text(f"[archive]\nvolume_mb = {args.volume_mb}\n")
        content = make_payload(work / "data", size)
        meta = load_torrent(make_torrent(content))
        ctx = Context(home)
        catalog_torrent(ctx.catalog, ctx.manifests, meta, content.parent, reason="bench")
        ctx.store.snapshot(meta, content.parent, "manual")
        (work / "remote").mkdir()
        runs = [one_run(work, ctx, content, i, exe) for i in range(args.runs)]
        slow = py7zr_run(work, ctx) if args.py7zr else None
        ctx.close()
        load += f" At the end: {os.getloadavg()[0]:.2f}."
        body = report(runs, slow, size, args, version, load)
        print(body)
        if not args.no_write:
            write_section("archive", body)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(runs: list[dict], slow: dict | None, size: int, args, version: str, load: str) -> str:
    mib = size / 2**20

    def med(key):
        return statistics.median(r[key] for r in runs)

    def each(key):
        return ", ".join(f"{r[key]:.2f}" for r in runs)

    ref_c = [r["7z a"] + r["par2 create"] for r in runs]
    ref_r = [r["7z x"] + r["par2 verify"] for r in runs]
    c_ratio = statistics.median(r["create"] / x for r, x in zip(runs, ref_c))
    s_ratio = statistics.median(r["create"] / (x + r["sync"]) for r, x in zip(runs, ref_c))
    r_ratio = statistics.median(r["restore"] / x for r, x in zip(runs, ref_r))
    last = runs[-1]
    p, g = last["par2"], last["protection"]
    phases_c = ", ".join(f"{k} {v:.2f}" for k, v in last["create_phases"].items())
    phases_r = ", ".join(f"{k} {v:.2f}" for k, v in last["restore_phases"].items())
    rows = [
        ["`seedward archive create` (weekly, local rclone remote)", f"{med('create'):.2f}",
         f"{mib / med('create'):.0f}", each("create"), phases_c],
        ["`7z a -mx=0 -mhe=on -v -p` (AES-256, copy)", f"{med('7z a'):.2f}", f"{mib / med('7z a'):.0f}", each("7z a"),
         f"{last['volumes']} volumes in the set"],
        ["`par2 create` over those volumes (the set's layout, block size and counts)", f"{med('par2 create'):.2f}",
         f"{mib / med('par2 create'):.0f}", each("par2 create"),
         f"{p['strategy']}: {len(p['sets'])} x par2 create -s{p['block_size']}, -c{last['count']} in all"],
        ["**create ratio**: seedward / (7z a + par2 create)", f"**{c_ratio:.2f}x**", "", "", "target <= 1.3x"],
        ["then `fsync` of the tools' files (seedward syncs a local destination)", f"{med('sync'):.2f}", "",
         each("sync"), f"seedward / (7z a + par2 create + fsync): {s_ratio:.2f}x"],
        ["`seedward archive restore` (download, verify, decrypt, unpack, verify)", f"{med('restore'):.2f}",
         f"{mib / med('restore'):.0f}", each("restore"), phases_r],
        ["`7z x`", f"{med('7z x'):.2f}", f"{mib / med('7z x'):.0f}", each("7z x"), ""],
        ["`par2 verify`", f"{med('par2 verify'):.2f}", f"{mib / med('par2 verify'):.0f}", each("par2 verify"), ""],
        ["**restore ratio**: seedward / (7z x + par2 verify)", f"**{r_ratio:.2f}x**", "", "", "target <= 1.5x"],
    ]
    if slow:
        rows += [["create with py7zr (no 7-Zip command)", f"{slow['create']:.2f}", f"{mib / slow['create']:.0f}", "",
                  "one run"],
                 ["restore with py7zr", f"{slow['restore']:.2f}", f"{mib / slow['restore']:.0f}", "", "one run"]]
    return "\n".join([
        f"## Archive tiers ({stamp()})",
        "",
        f"Machine: {machine()}. {load} 7-Zip: {version}.",
        f"Payload: {mib:.0f} MiB of random bytes in 8 `.mkv` files (already-compressed media: stored), volumes of at "
        f"most {args.volume_mb} MiB; {len(runs)} runs, each doing the four commands one after another (page cache "
        "warm); median seconds, then every run's. Ratios are medians of each run's ratio.",
        "",
        table(["what", "seconds (median)", "MiB/s", "runs", "notes"], rows),
        "",
        f"PAR2 of the set: {p['strategy']}, {p['redundancy']}% class, {g['par2_bytes']:,} B = {g['overhead_percent']}% "
        f"of the volumes; repairs any {g['anywhere_volumes']} lost volumes or {g['anywhere_blocks']} damaged blocks.",
        f"create = `7z a` reading the seeding files in place ({last['in_place']} torrent(s): their identity still the "
        "verified one; a quick verify of them and each volume's SHA-256 on the other core meanwhile), the small "
        "compressible archive (manifests, catalog, .torrent) in LZMA2 at the same time, `par2 create`, then the "
        "files moved into the local destination and synced. restore = the set read in place (a local path), every "
        "volume's SHA-256 checked while `7z x` unpacks, then every member's SHA-256 against the set and the catalog "
        "(two threads). The references write nothing to a destination and sync nothing.",
    ])


def make_payload(root: Path, size: int, files: int = 8) -> Path:
    """Already-compressed media: random bytes named as video files."""
    return common_payload(root, size, files, folder="media", name="episode {i:02d}.mkv")


if __name__ == "__main__":
    main()
