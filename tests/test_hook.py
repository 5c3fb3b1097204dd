"""The qBittorrent hook: stdlib only, spools when the service is down, chains the user's program."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from companion import spool
from companion.home import Home
from tests.helpers import seedward, wait_until
from tests.qbt import seed_sample, wait_states

HOOK = shutil.which("seedward-hook") or str(Path(sys.executable).parent / "seedward-hook")
V1 = "aa" * 20
V2 = "bb" * 32


def test_hook_loads_no_third_party_module():
    code = ("import sys, plugin.hook; plugin.hook.main(['--home', sys.argv[1], 'added', 'x']); "
            "print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))")
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"seedward-hook-import-{os.getpid()}"
    try:
        out = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, check=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    loaded = set(out.stdout.split())
    assert not loaded & {"libtorrent", "qbittorrentapi", "requests", "xxhash", "git", "textual", "watchdog", "urllib3"}


def test_hook_spools_when_no_service_runs_and_the_service_drains_it(tmp_path):
    home = Home(tmp_path / "home")
    done = subprocess.run([HOOK, "--home", str(home.root), "finished", V1, V2, "My Album", "/srv/seed", "/srv/seed/My Album"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    files = spool.pending(home.spool)
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
    event = json.loads(files[0].read_text())
    assert event == {"event": "finished", "hash": V1, "hash_v2": V2, "name": "My Album", "save_path": "/srv/seed",
                     "content_path": "/srv/seed/My Album"}
    seen = []
    assert spool.drain(home.spool, seen.append) == 1
    assert seen == [event] and spool.pending(home.spool) == []


def test_hook_rejects_a_bad_call_and_spool_skips_garbage(tmp_path):
    bad = subprocess.run([HOOK, "--home", str(tmp_path), "exploded"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "00000000000000000001-1-x.json").write_text("{not json")
    assert spool.drain(tmp_path / "spool", lambda e: None) == 0
    assert [p.name for p in (tmp_path / "spool").iterdir()] == ["00000000000000000001-1-x.json.bad"]


@pytest.mark.qbt
def test_torrent_added_while_the_service_is_stopped_is_protected_via_the_spool(qbt, make_service, tmp_path):
    home = Home(tmp_path / "home").ensure()
    env = {"QBITTORRENTAPI_HOST": qbt.url, "QBITTORRENTAPI_USERNAME": qbt.username,
           "QBITTORRENTAPI_PASSWORD": qbt.password}
    marks = tmp_path / "marks"
    marks.mkdir()
    user_program = f'/usr/bin/touch "{marks}/%N.added"'
    qbt.client.app_set_preferences({"autorun_on_torrent_added_enabled": True,
                                    "autorun_on_torrent_added_program": user_program})
    try:
        out = seedward("qbt", "install-hook", "--json", home=home.root, env=env)
        assert out.returncode == 0, out.stderr
        changes = {c["event"]: c for c in json.loads(out.stdout)["changes"]}
        assert changes["added"]["chained"] == user_program and changes["finished"]["changed"]
        prefs = qbt.client.app_preferences()
        assert prefs["autorun_enabled"] and "seedward-hook" in prefs["autorun_program"]
        assert prefs["autorun_on_torrent_added_program"].endswith(f" -- {user_program}")
        assert qbt.password not in prefs["autorun_program"]

        # the service is not running: qBittorrent runs the hook, which spools the event
        h, _ = seed_sample(qbt, tmp_path / "data", "while-down")
        wait_until(lambda: spool.pending(home.spool), 30, what="the hook's spooled event")
        wait_until(lambda: (marks / "while-down.added").exists(), 30, what="the chained program")
        assert any(json.loads(p.read_text())["hash_v2"][:40] == h for p in spool.pending(home.spool))

        service = make_service(home=home.root, grace=600)
        wait_states(service, [h])
        wait_until(lambda: not spool.pending(home.spool), 30, what="the drained spool")
        sources = {json.loads(e["detail"]).get("source") for e in service.catalog.events(h) if e["kind"] == "hook"}
        assert "spool" in sources

        # with the service running the hook speaks over the socket
        h2, _ = seed_sample(qbt, tmp_path / "data", "while-up", seed=5)
        wait_until(lambda: any(e["kind"] == "hook" for e in service.catalog.events(h2)), 30, what="the hook event")
        wait_states(service, [h, h2])
        assert {json.loads(e["detail"]).get("source") for e in service.catalog.events(h2) if e["kind"] == "hook"} == {"socket"}
        assert [r["ok"] for r in service.catalog.query("SELECT ok FROM runs WHERE torrent_id = ?", (h2,))] == [1]
    finally:
        out = seedward("qbt", "uninstall-hook", home=home.root, env=env)
    assert out.returncode == 0, out.stderr
    assert "before:" in out.stdout
    prefs = qbt.client.app_preferences()
    assert prefs["autorun_on_torrent_added_program"] == user_program and prefs["autorun_on_torrent_added_enabled"]
    assert prefs["autorun_program"] == "" and not prefs["autorun_enabled"]
    qbt.client.app_set_preferences({"autorun_on_torrent_added_enabled": False, "autorun_on_torrent_added_program": ""})


def test_hook_chains_after_its_five_fields_even_when_a_name_is_dashes(tmp_path):
    marker = tmp_path / "chained"
    done = subprocess.run([HOOK, "--home", str(tmp_path / "home"), "added", V1, "-", "--", "/srv", "/srv/--", "--",
                           "/usr/bin/touch", str(marker)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    event = json.loads(spool.pending(tmp_path / "home" / "spool")[0].read_text())
    assert event["name"] == "--" and event["content_path"] == "/srv/--"
    wait_until(marker.exists, 10, what="the chained program")
