"""The command line behaves like restic's (issue 18): global options anywhere, one config loader
for every verb, help on every flag, a closed pipe is not a traceback, one time format, progress
only on a terminal."""

import argparse
import json
import os
import pty
import select
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest

from companion.catalog.db import catalog_for
from companion.cli import timefmt
from companion.cli.main import _subparsers, build_parser
from companion.config import Settings
from companion.home import Home
from tests.helpers import make_torrent, seedward, write_payload

# One harmless call of every leaf verb (arguments only so argparse lets it reach the verb).
LEAF_CALLS = {
    "archive create": ["--tier", "daily"], "archive list": [], "archive prune": [], "archive restore": ["ab"],
    "catalog add": ["x.torrent", "."], "catalog show": ["ab"], "check": ["x.torrent", "."], "check-store": [],
    "continuity": ["--cached"], "coverage": [], "demo": [], "drill": ["ab"], "drills": [], "events": [],
    "fleet status": [], "fleet adopt": ["host"], "fleet import-catalog": [], "fleet rebuild-index": [], "forget": [], "job run": ["--torrent", "ab", "--model", "m", "--model-version", "1", "--", "true"],
    "job show": ["ab"], "jobs": [], "lease acquire": [".", "--ttl", "1"], "lease release": ["tok"],
    "lease list": [], "notify test": [], "prune": [], "publish": ["ab"], "qbt install-hook": [],
    "qbt uninstall-hook": [], "qbt backup": [], "qbt restore": [], "qbt login": [], "quarantine list": [],
    "quarantine show": ["ab"], "quarantine export": ["ab", "dest"], "quarantine purge": [], "restore": ["ab"],
    "serve": [], "snapshot": ["ab"], "snapshots": [], "start": ["ab"], "status": [], "stop": ["ab"], "tui": [],
    "verify": ["ab"],
}


def leaves(parser=None, prefix=""):
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                subs = [a for a in child._actions if isinstance(a, argparse._SubParsersAction)]
                if subs:
                    yield from leaves(child, prefix + name + " ")
                else:
                    yield prefix + name, child


def test_every_verb_is_listed_here():
    assert {name for name, _ in leaves()} == set(LEAF_CALLS)


def test_an_unknown_config_key_is_an_error_for_every_verb(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.toml"
    config.write_text('[catalog]\nulr = "postgresql://db/seedward"\n')

    def call(verb):
        return verb, seedward(*verb.split(), *LEAF_CALLS[verb], home=home)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, LEAF_CALLS))
    for verb, r in results:
        assert r.returncode == 2, (verb, r.returncode, r.stderr)
        assert f"{config}: bad configuration: unknown key 'ulr' in [catalog] (did you mean 'url'?)" in r.stderr, (
            verb, r.stderr)
        assert "Traceback" not in r.stderr
    assert not (home / "catalog.sqlite").exists()  # nothing ran


def test_a_wrong_type_names_the_key_and_the_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("[service]\njobs = \"2\"\n")
    r = seedward("status", home=home)
    assert r.returncode == 2 and f"{home / 'config.toml'}: bad configuration: service.jobs should be a whole number, " \
                                  "not \"2\"" in r.stderr


def test_every_flag_and_argument_has_help():
    parser = build_parser()
    missing = []
    for child in [parser, *_subparsers(parser)]:
        for action in child._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if action.help is None:
                missing.append((child.prog, action.option_strings or action.dest))
    assert not missing


def events_home(tmp_path, n: int) -> Path:
    home = tmp_path / "home"
    cat = catalog_for(Home(home).ensure(), Settings())
    with cat.tx() as db:
        db.executemany("INSERT INTO events (torrent_id, at, kind, level, message, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       [(None, "2026-11-01T12:00:00.000+00:00", "scrub", "info", f"scrub {i} [FLAC]", "{}")
                        for i in range(n)])
    cat.close()
    return home


def test_global_options_anywhere_on_the_line(tmp_path):
    home = events_home(tmp_path, 3)
    elsewhere = tmp_path / "elsewhere"
    before = seedward("--json", "--home", home, "events", home=elsewhere)
    after = seedward("events", "--home", str(home), "--json", home=elsewhere)
    mixed = seedward("-q", "events", f"--home={home}", "-v", "--json", home=elsewhere)
    assert before.returncode == after.returncode == mixed.returncode == 0, (before.stderr, after.stderr)
    assert before.stdout == after.stdout == mixed.stdout
    assert [json.loads(line)["message"] for line in before.stdout.splitlines()] == [f"scrub {i} [FLAC]" for i in range(3)]
    assert not elsewhere.exists()  # --home won, wherever it was
    r = seedward("serve", "--json", home=home)
    assert r.returncode == 2 and "--json: `seedward serve` has no JSON output" in r.stderr


@pytest.mark.parametrize("verb", [["events", "--since", "2026-10-01"], ["events", "--since", "2026-10-01", "--json"],
                                  ["status", "--json"], ["drills", "--limit", "5000"]])
def test_a_closed_pipe_is_no_traceback(tmp_path, verb):
    home = events_home(tmp_path, 20_000)
    cat = catalog_for(Home(home), Settings())
    ids = [f"{i:040x}" for i in range(1, 3001)]
    with cat.tx() as db:  # enough rows for status and drills to outgrow a pipe's buffer
        db.executemany("INSERT INTO torrents (id, name, kind, piece_length, num_pieces, total_size, payload_size,"
                       " protection, added_at, updated_at) VALUES (?, ?, 'v1', 16384, 1, 1, 1, 'protected', ?, ?)",
                       [(t, f"t{t}", "2026-11-01T12:00:00.000+00:00", "2026-11-01T12:00:00.000+00:00") for t in ids])
        db.executemany("INSERT INTO drills (id, torrent_id, snapshot_id, reason, state, started_at, finished_at)"
                       " VALUES (?, ?, ?, 'manual', 'passed', ?, ?)",
                       [(f"{i:016x}", t, "s" * 64, "2026-11-01T12:00:00.000+00:00", "2026-11-01T12:00:01.000+00:00")
                        for i, t in enumerate(ids)])
    cat.close()
    exe = str(Path(os.sys.executable).parent / "seedward")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a user's shell runs it (unbuffered,
    # CPython drops what a partial write to a closing pipe left instead of raising)
    proc = subprocess.Popen([exe, *verb], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(env, SEEDWARD_HOME=str(home)))
    assert proc.stdout.read(10)
    proc.stdout.close()  # as `| head -c 10` does
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert proc.returncode == 141, err
    assert err == "", err


def test_one_time_format(tmp_path):
    home = events_home(tmp_path, 1)
    r = seedward("events", home=home, env={"TZ": "Asia/Tokyo"})
    assert r.stdout.startswith("2026-11-01 21:00:00  info"), r.stdout  # local time in tables
    line = json.loads(seedward("events", "--json", home=home, env={"TZ": "Asia/Tokyo"}).stdout)
    assert line["at"] == "2026-11-01T12:00:00.000+00:00"  # ISO 8601 with its offset in JSON
    assert timefmt.iso(datetime(2026, 11, 1, 12, tzinfo=timezone.utc)) == "2026-11-01T12:00:00.000+00:00"
    assert timefmt.iso("2026-11-01T12:00:00") == "2026-11-01T12:00:00.000+00:00"  # the catalog's naive = UTC
    assert timefmt.since("2h", now=datetime(2026, 11, 1, 12, tzinfo=timezone.utc)) == datetime(
        2026, 11, 1, 10, tzinfo=timezone.utc)


def run_in_terminal(args, home: Path, timeout: float = 120.0) -> tuple[int, str]:
    """Run the real seedward with stdout and stderr on a pseudo-terminal; (exit code, all it wrote)."""
    exe = str(Path(os.sys.executable).parent / "seedward")
    leader, follower = pty.openpty()
    proc = subprocess.Popen([exe, *map(str, args)], stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
                            env=dict(os.environ, SEEDWARD_HOME=str(home), TERM="xterm-256color", COLUMNS="120"))
    os.close(follower)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=30), out.decode(errors="replace")


def test_progress_on_a_terminal_only(tmp_path):
    content = write_payload(tmp_path / "data", {"Album [FLAC]/a.flac": 24 << 20, "Album [FLAC]/b.flac": 8 << 20})
    torrent = make_torrent(content, piece_size=1 << 18, out=tmp_path / "a.torrent")
    home = tmp_path / "home"
    code, screen = run_in_terminal(["check", torrent, content.parent], home)
    assert code == 0, screen
    assert "MB" in screen and "\x1b[" in screen, screen  # rich's bar: sizes, drawn with terminal codes
    assert "intact" in screen
    code, screen = run_in_terminal(["check", torrent, content.parent, "--json"], home)
    assert code == 0 and "\x1b[" not in screen and json.loads(screen)["ok"] is True  # --json: no progress
    code, screen = run_in_terminal(["--quiet", "check", torrent, content.parent], home)
    assert code == 0 and "\x1b[" not in screen and "intact" in screen
    r = seedward("check", torrent, content.parent, home=home)  # not a terminal: no progress
    assert r.returncode == 0 and r.stderr == "" and "\x1b[" not in r.stdout


def test_progress_on_every_verb_that_reads_or_writes_a_payload(tmp_path):
    content = write_payload(tmp_path / "data", {"Album [FLAC]/a.flac": 12 << 20, "Album [FLAC]/b.flac": 4 << 20})
    torrent = make_torrent(content, piece_size=1 << 18, out=tmp_path / "a.torrent")
    home = tmp_path / "home"
    for args in (["catalog", "add", torrent, content.parent], ["verify", "--all", "--full"], ["verify", "--all"]):
        code, screen = run_in_terminal(args, home)
        assert code == 0 and "\x1b[" in screen and "MB" in screen, (args, screen)
    tid = json.loads(seedward("status", "--json", home=home).stdout)["torrents"][0]["id"]
    for args in (["snapshot", tid[:8]], ["restore", tid[:8], "--to", tmp_path / "back"], ["check-store"],
                 ["drill", tid[:8]]):
        code, screen = run_in_terminal(args, home)
        assert code == 0 and "\x1b[" in screen, (args, screen)
    restored = tmp_path / "back" / content.name / "Album [FLAC]" / "a.flac"
    assert restored.read_bytes() == (content / "Album [FLAC]" / "a.flac").read_bytes()
    for args in (["snapshot", tid[:8], "--json"], ["check-store", "--json"]):
        code, screen = run_in_terminal(args, home)
        assert code == 0 and "\x1b[" not in screen, (args, screen)  # --json: no progress
