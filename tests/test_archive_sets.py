"""Archive sets as the user meets them (issue 19): the catalog knows the sets it made, restore finds
their remote, a total loss of the state home still lists and restores from the remote; the 7z
command never sees the passphrase on its argv or in its environment (read from /proc/PID of the real
7z process); seeding files that changed are archived from the store instead; py7zr and 7z read each
other's sets. Real store, real 7z, par2cmdline-turbo and rclone."""

import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from companion.archive.create import create_set
from companion.archive.remote import Remote
from companion.catalog import archives as records
from companion.cli.context import Context
from companion.scan import Cancelled
from tests.helpers import flip_byte, wait_until
from tests.test_archive import PASS, add_torrent, configure, env, run, same_tree, the_set  # noqa: F401 (env: fixture)

WRAPPER = """#!/bin/sh
# Stand-in for 7z: starts the real one with its stdin on a FIFO, records what /proc says about the
# real process while it waits for its passphrase, then hands it our stdin.
set -e
rec="{rec}"
fifo=$(mktemp -u "$rec/fifo.XXXXXX")
mkfifo "$fifo"
{real} "$@" <> "$fifo" &
pid=$!
while [ "$(readlink /proc/$pid/exe)" != "$(readlink -f {real})" ]; do :; done
tr '\\0' '\\n' < /proc/$pid/cmdline > "$rec/$pid.cmdline"
tr '\\0' '\\n' < /proc/$pid/environ > "$rec/$pid.environ"
{before}
cat > "$fifo"
rm -f "$fifo"
wait $pid
"""


def wrap_7z(tmp: Path, before: str = "") -> Path:
    rec = tmp / "7z-records"
    rec.mkdir()
    exe = tmp / "seven"
    exe.write_text(WRAPPER.format(rec=rec, real=_real_binary(), before=before))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def _real_binary() -> str:
    """The 7-Zip executable itself (Debian's /usr/bin/7z is a shell script exec'ing /usr/lib/p7zip/7z)."""
    found = shutil.which("7zz") or shutil.which("7z")
    text = Path(found).read_bytes()[:200]
    if text.startswith(b"#!"):
        for word in text.decode(errors="replace").split():
            if word.startswith("/") and "7z" in Path(word).name and os.access(word, os.X_OK):
                return word
    return str(Path(found).resolve())


def test_the_passphrase_never_reaches_7z_argv_or_environment(env):
    seven = wrap_7z(env["tmp"])
    configure(env["home"], volume_kb=64, remote=str(env["remote"]), sevenzip=str(seven))
    secret_env = {"SEEDWARD_ARCHIVE_PASSPHRASE": PASS}
    r = run(env, "archive", "create", "--tier", "weekly", "--json", env=secret_env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["writer"] == "7z"
    to = env["tmp"] / "back"
    r = run(env, "archive", "restore", the_set(env["remote"]).name, "--to", to, env=secret_env)
    assert r.returncode == 0, r.stderr
    same_tree(env["payload"], to / "payload" / env["tid"] / "show")
    records_ = sorted((env["tmp"] / "7z-records").glob("*.cmdline"))
    assert len(records_) >= 3  # two archives written, at least one read back
    verbs = set()
    for cmdline in records_:
        argv = cmdline.read_text().splitlines()
        environ = cmdline.with_suffix(".environ").read_text()
        verbs.add(argv[1])
        assert all(PASS not in a for a in argv) and "-p" + PASS not in argv
        assert PASS not in environ and "SEEDWARD_ARCHIVE_PASSPHRASE" not in environ
    assert verbs == {"a", "x"}


def test_a_seeding_file_changed_while_archived_fails_the_set_and_the_next_comes_from_the_store(env):
    ep1 = env["payload"] / "ep1.mkv"
    original = ep1.read_bytes()
    # the stand-in 7z changes a seeding file just before the real 7z reads it
    seven = wrap_7z(env["tmp"], before=f"printf X | dd of='{ep1}' bs=1 seek=100 conv=notrunc 2>/dev/null")
    configure(env["home"], volume_kb=64, remote=str(env["remote"]), sevenzip=str(seven))
    r = run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"])
    assert r.returncode == 2 and "changed while it was archived" in r.stderr, r.stderr
    assert not [p for p in env["remote"].glob("*/*") if p.is_dir()]  # nothing uploaded
    assert ep1.read_bytes() != original

    configure(env["home"], volume_kb=64, remote=str(env["remote"]))
    r = run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"], "--json")
    assert r.returncode == 0, r.stderr
    folder = the_set(env["remote"])
    ctx = Context(env["home"])
    assert records.get_set(ctx.catalog, folder.name)["manifest"]["read_in_place"] == []  # from the store
    ctx.close()
    to = env["tmp"] / "snap"
    r = run(env, "archive", "restore", folder.name, "--to", to, "--passphrase-file", env["pass"])
    assert r.returncode == 0, r.stderr
    assert (to / "payload" / env["tid"] / "show" / "ep1.mkv").read_bytes() == original  # the snapshot's bytes


def test_catalog_lists_its_sets_and_restore_finds_their_remote(env):
    remote = env["remote"]
    configure(env["home"], volume_kb=64)  # no [archive] remote
    r = run(env, "archive", "list")
    assert r.returncode == 0 and "no remote configured" in r.stdout and "made no set" in r.stdout
    r = run(env, "archive", "create", "--tier", "weekly", "--remote", remote, "--passphrase-file", env["pass"],
            "--json")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)["set_id"]

    r = run(env, "archive", "list", "--json", check=True)
    out = json.loads(r.stdout)
    assert out["remote"] is None and "no remote configured" in out["note"]
    [s] = out["sets"]
    assert (s["set_id"], s["state"], s["remote"]) == (made, "uploaded (catalog)", str(remote))
    assert s["protection"]["anywhere_volumes"] >= 1
    r = run(env, "archive", "list", check=True)
    assert made in r.stdout and f"on {remote}" in r.stdout

    to = env["tmp"] / "found"
    r = run(env, "archive", "restore", made[:14], "--to", to, "--passphrase-file", env["pass"], "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["remote"] == str(remote)
    same_tree(env["payload"], to / "payload" / env["tid"] / "show")

    # a set unknown to the catalog, no remote given or configured: a clear error naming the set, exit 2
    r = run(env, "archive", "restore", "19990101", "--to", env["tmp"] / "x", "--passphrase-file", env["pass"])
    assert r.returncode == 2 and r.stderr.strip() == ("seedward: archive set '19990101' not found in this state "
                                                     "home's catalog, and no remote is configured to look on (give "
                                                     "--remote DEST)")
    # a remote holding no set, or a path that does not exist (a typo), says so rather than printing nothing
    r = run(env, "archive", "list", "--remote", env["tmp"] / "no-such-remote", check=True)
    assert r.stdout.strip() == f"no sets on {env['tmp'] / 'no-such-remote'} (no such folder)"
    (env["tmp"] / "empty-remote").mkdir()
    r = run(env, "archive", "list", "--remote", env["tmp"] / "empty-remote", "--json", check=True)
    assert json.loads(r.stdout)["note"] == f"no sets on {env['tmp'] / 'empty-remote'}"


def test_after_losing_the_state_home_the_remote_lists_and_restores(env):
    r = run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"], "--json")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)["set_id"]
    shutil.rmtree(env["home"])
    fresh = env["tmp"] / "new-home"
    fresh.mkdir()
    r = run({"home": fresh}, "archive", "list", "--remote", env["remote"], "--json", check=True)
    [s] = json.loads(r.stdout)["sets"]
    assert s["set_id"] == made and s["state"] == "uploaded" and s["as_stored"]["volumes_present"] == s["volumes"]
    assert s["as_stored"]["overhead_percent"] == s["protection"]["overhead_percent"]
    to = env["tmp"] / "after-loss"
    r = run({"home": fresh}, "archive", "restore", made, "--remote", env["remote"], "--to", to,
            "--passphrase-file", env["pass"], "--drill", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["checked_against_catalog"] == 0 and out["drill"][0]["ok"] is True  # no catalog: the set's own hashes
    same_tree(env["payload"], to / "payload" / env["tid"] / "show")
    assert (to / "catalog" / "catalog.sqlite").is_file() and (to / "manifests" / "torrents").is_dir()


def test_py7zr_and_7z_read_each_others_sets(env):
    configure(env["home"], volume_kb=64, remote=str(env["remote"]), sevenzip="py7zr")
    r = run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"], "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["writer"] == "py7zr"
    by_py7zr = the_set(env["remote"]).name
    configure(env["home"], volume_kb=64, remote=str(env["remote"]))
    r = run(env, "archive", "restore", by_py7zr, "--to", env["tmp"] / "a", "--passphrase-file", env["pass"], "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["reader"] == "7z", r.stderr
    same_tree(env["payload"], env["tmp"] / "a" / "payload" / env["tid"] / "show")

    r = run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"], "--json")
    by_7z = json.loads(r.stdout)["set_id"]
    configure(env["home"], volume_kb=64, remote=str(env["remote"]), sevenzip="py7zr")
    r = run(env, "archive", "restore", by_7z, "--to", env["tmp"] / "b", "--passphrase-file", env["pass"], "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["reader"] == "py7zr", r.stderr
    same_tree(env["payload"], env["tmp"] / "b" / "payload" / env["tid"] / "show")
    r = run(env, "archive", "restore", by_7z, "--to", env["tmp"] / "c", env={"SEEDWARD_ARCHIVE_PASSPHRASE": "nope"})
    assert r.returncode == 12 and "wrong passphrase" in r.stderr


def test_create_reports_what_the_uploaded_files_repair(env):
    r = run(env, "archive", "create", "--tier", "monthly", "--passphrase-file", env["pass"])
    assert r.returncode == 0, r.stderr
    folder = the_set(env["remote"])
    doc = json.loads((folder / "set.json").read_text())
    g = doc["protection"]
    par2_bytes = sum(f.stat().st_size for f in folder.iterdir() if f.suffix == ".par2")
    volume_bytes = sum(v["size"] for v in doc["volumes"])
    assert g["par2_bytes"] == par2_bytes and g["volume_bytes"] == volume_bytes
    assert g["overhead_percent"] == round(100 * par2_bytes / volume_bytes, 2)
    assert abs(g["overhead_percent"] - doc["par2"]["redundancy"]) < 6  # a 0.7 MB set: PAR2's own packets weigh
    assert f"{par2_bytes:,} B of PAR2 = {g['overhead_percent']}% of the volumes" in r.stdout
    assert f"repairs any {g['anywhere_volumes']} lost volume" in r.stdout and "any 0 lost" not in r.stdout
    ctx = Context(env["home"])
    row = records.get_set(ctx.catalog, folder.name)
    ctx.close()
    assert row["state"] == "uploaded" and row["archive_bytes"] == volume_bytes + par2_bytes

    # damage a volume: flip one byte in each of `anywhere_blocks` places is still within reach
    flip_byte(folder / doc["volumes"][0]["name"], 10)
    r = run(env, "archive", "restore", folder.name, "--to", env["tmp"] / "r", "--passphrase-file", env["pass"])
    assert r.returncode == 0, r.stderr


def test_a_second_torrent_added_later_is_in_the_next_full_set(env):
    _, tid2 = add_torrent(env["tmp"], env["home"], "album", {"a.flac": 150_000, "cover.jpg": 20_000}, seed=4)
    r = run(env, "archive", "create", "--tier", "weekly", "--passphrase-file", env["pass"], "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    ctx = Context(env["home"])
    doc = records.get_set(ctx.catalog, out["set_id"])["manifest"]
    ctx.close()
    assert sorted(doc["read_in_place"]) == sorted([env["tid"], tid2])
    paths = {m["path"] for m in doc["members"]}
    assert {f"torrents/{env['tid']}.torrent", f"torrents/{tid2}.torrent"} <= paths


def test_a_cancelled_run_stops_7z_and_keeps_nothing(env):
    """The service stopping mid-run (the job's cancel event): 7z is ended, nothing of the set stays."""
    seven = wrap_7z(env["tmp"], before="sleep 60")  # the real 7z waits for its passphrase meanwhile
    records_dir = env["tmp"] / "7z-records"
    ctx = Context(env["home"])
    ctx.settings.archive.sevenzip = str(seven)
    cancel = threading.Event()

    def stop_when_7z_runs():
        wait_until(lambda: list(records_dir.glob("*.cmdline")), 60, what="7z started")
        cancel.set()

    stopper = threading.Thread(target=stop_when_7z_runs)
    stopper.start()
    with pytest.raises(Cancelled):
        create_set(home=ctx.home, settings=ctx.settings, catalog=ctx.catalog, manifests=ctx.manifests,
                   store=ctx.store, tier="weekly", remote=Remote(str(env["remote"])), passphrase=PASS, cancel=cancel)
    stopper.join()
    pids = [int(p.name.split(".")[0]) for p in records_dir.glob("*.cmdline")]
    assert pids

    def ended(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        except OSError:
            return True

    wait_until(lambda: all(ended(pid) for pid in pids), 30, what="every real 7z ended")
    archive = env["home"] / "archive"
    assert not list((archive / "outbox").glob("*")) and not list((archive / "staging").glob("*"))
    assert not [p for p in env["remote"].glob("*/*")] and records.list_sets(ctx.catalog) == []
    ctx.close()
