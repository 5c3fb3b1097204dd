"""--dry-run on every verb that changes state (issue 18): each says what it would do and changes
nothing: the catalog, the store, the files on disk and qBittorrent's settings are as before."""

import json
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from companion.publish import build
from companion.torrent import load_torrent
from tests.helpers import flip_byte, make_torrent, seedward, write_payload
from tests.test_cli_behaviour import LEAF_CALLS, leaves

# Verbs that change something (the catalog, the store, files, qBittorrent): each has --dry-run.
CHANGING = {"archive create", "archive prune", "catalog add", "check-store", "drill", "fleet adopt",
            "fleet rebuild-index", "forget", "job run", "lease acquire", "lease release", "prune", "publish",
            "qbt backup", "qbt install-hook", "qbt restore", "qbt uninstall-hook", "quarantine export",
            "quarantine purge", "restore", "snapshot", "start", "stop", "verify"}
# The others, and why they need none.
NO_DRY_RUN = {
    "archive list": "reads", "archive restore": "writes only into an empty --to folder (never over anything)",
    "catalog show": "reads", "check": "reads", "continuity": "reads (records the swarm counts it saw)",
    "coverage": "reads", "demo": "its own temporary home", "drills": "reads", "events": "reads",
    "fleet status": "reads", "fleet import-catalog": "copies into an empty shared catalog only",
    "job show": "reads", "jobs": "reads", "lease list": "reads", "notify test": "sends one test message",
    "qbt login": "one login attempt", "quarantine list": "reads", "quarantine show": "reads",
    "serve": "the service", "snapshots": "reads", "status": "reads", "tui": "asks first for every action",
}


def test_every_verb_that_changes_state_has_dry_run():
    assert CHANGING | set(NO_DRY_RUN) == set(LEAF_CALLS) and not CHANGING & set(NO_DRY_RUN)
    for name, parser in leaves():
        flags = {s for a in parser._actions for s in a.option_strings}
        assert ("--dry-run" in flags) == (name in CHANGING), name


def table_rows(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: con.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        con.close()


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def cataloged(tmp_path):
    content = write_payload(tmp_path / "seed" / "Album [FLAC]", {"a.flac": 200_000, "b.flac": 50_000})
    torrent = make_torrent(content, piece_size=16384, out=tmp_path / "album.torrent")
    home = tmp_path / "home"
    r = seedward("catalog", "add", "--dry-run", "--json", torrent, content.parent, home=home)
    assert r.returncode == 0 and json.loads(r.stdout)["would_be"] == "protected"
    assert not home.exists()  # a dry run made no state home
    r = seedward("catalog", "add", "--json", torrent, content.parent, home=home)
    assert r.returncode == 0, r.stderr
    return {"home": home, "content": content, "torrent": torrent, "id": json.loads(r.stdout)["id"]}


def test_dry_runs_change_nothing(cataloged, tmp_path):
    home, tid, content = cataloged["home"], cataloged["id"], cataloged["content"]
    r = seedward("snapshot", tid[:8], home=home)
    assert r.returncode == 0, r.stderr
    flip_byte(content / "a.flac", 1000)  # drift: a real verify would mark the torrent damaged
    before_rows, before_files = table_rows(home / "catalog.sqlite"), files_under(home)
    calls = [
        ("verify", tid[:8], "--dry-run"), ("verify", tid[:8], "--full", "--dry-run"),
        ("snapshot", "--all", "--dry-run"), ("drill", tid[:8], "--dry-run"),
        ("job", "run", "--dry-run", "--json", "--torrent", tid[:8], "--model", "m", "--model-version", "1", "--", "true"),
        ("lease", "acquire", str(content), "--ttl", "60", "--dry-run"),
        ("stop", tid[:8], "--dry-run"), ("start", tid[:8], "--dry-run"),
        ("forget", "--keep-last", "1", "--dry-run"), ("prune", "--dry-run"),
    ]
    out = {}
    for call in calls:
        r = seedward(*call, *(() if "--json" in call else ("--json",)), home=home)
        out[call[0] + " " + call[1]] = r
        assert r.returncode in (0, 1, 2), (call, r.stderr)
        assert "Traceback" not in r.stderr, (call, r.stderr)
    assert table_rows(home / "catalog.sqlite") == before_rows
    assert files_under(home) == before_files
    verify = json.loads(out["verify " + tid[:8]].stdout)
    assert verify["ok"] is False and verify["dry_run"] and not verify["torrents"][0]["marked_damaged"]
    assert json.loads(seedward("status", "--json", home=home).stdout)["torrents"][0]["protection"] == "protected"
    job = json.loads(out["job run"].stdout)
    assert job["dry_run"] and job["files"] == ["Album [FLAC]/a.flac", "Album [FLAC]/b.flac"] and job["refused"] is None
    lease = json.loads(out["lease acquire"].stdout)
    assert list(lease["covers"]) == [tid] and len(lease["covers"][tid]) == 2  # both files (index 1: a pad file)
    drill = json.loads(out["drill " + tid[:8]].stdout)
    assert drill["drills"][0]["bytes"] == 250_000 and drill["drills"][0]["snapshot"]


def test_qbt_install_hook_dry_run_leaves_qbittorrent_as_it_was(qbt, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    secret = tmp_path / "qbt-password"
    secret.write_text(qbt.password)
    secret.chmod(0o600)
    (home / "config.toml").write_text(textwrap.dedent(f"""
        [qbittorrent]
        url = "{qbt.url}"
        username = "{qbt.username}"
        password_file = "{secret}"
    """))
    keys = ("autorun_enabled", "autorun_program", "autorun_on_torrent_added_enabled",
            "autorun_on_torrent_added_program")
    before = {k: v for k, v in qbt.client.app_preferences().items() if k in keys}
    r = seedward("qbt", "install-hook", "--dry-run", "--json", home=home)
    assert r.returncode == 0, r.stderr
    changes = json.loads(r.stdout)
    assert changes["dry_run"] and any(c["changed"] and "seedward-hook" in c["after"] for c in changes["changes"])
    assert {k: v for k, v in qbt.client.app_preferences().items() if k in keys} == before
    assert not (home / "hook.json").exists()


def test_publish_dry_run_names_the_torrent_it_would_make(qbt, tmp_path):
    seed = tmp_path / "seed"
    write_payload(seed / "film", {"film.mkv": 120_000}, seed=4)
    torrent = make_torrent(seed / "film", piece_size=32768, out=tmp_path / "film.torrent")
    home = tmp_path / "home"
    assert seedward("catalog", "add", torrent, seed, home=home).returncode == 0
    make = "import os; open(os.path.join(os.environ['SEEDWARD_OUTPUT'], 'notes.txt'), 'w').write('x' * 5000)"
    tid = json.loads(seedward("status", "--json", home=home).stdout)["torrents"][0]["id"]
    r = seedward("job", "run", "--torrent", tid, "--model", "m", "--model-version", "1", "--json", "--",
                 sys.executable, "-c", make, home=home)
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    before_rows, before_files = table_rows(home / "catalog.sqlite"), files_under(home)
    r = seedward("publish", job["id"], "--v2", "--dry-run", "--json", home=home)
    assert r.returncode == 0, r.stderr
    would = json.loads(r.stdout)
    assert table_rows(home / "catalog.sqlite") == before_rows and files_under(home) == before_files
    content = Path(job["outputs"][0]["path"]).parents[1]
    con = sqlite3.connect(home / "catalog.sqlite")
    con.row_factory = sqlite3.Row
    original = dict(con.execute("SELECT * FROM torrents WHERE id = ?", (tid,)).fetchone())
    con.close()
    meta = load_torrent(build(content, original=original, job_id=job["id"], kind="v2"))
    assert would["info_hash_v2"] == meta.info_hash_v2 and would["kind"] == "v2"
