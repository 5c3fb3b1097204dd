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


def test_hook_loads_only_the_standard_library():
    """A whole call (the service down: the event is spooled) loads nothing but the standard library and
    seedward's stdlib-only client, spool and errors modules."""
    code = (f"import sys; before = set(sys.modules); import plugin.hook; "
            f"code = plugin.hook.main(['--home', sys.argv[1], 'added', '{V1}']); "
            "print(code, ' '.join(sorted(set(sys.modules) - before)))")
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"seedward-hook-import-{os.getpid()}"
    try:
        out = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, check=True)
        assert len(spool.pending(home / "spool")) == 1
    finally:
        shutil.rmtree(home, ignore_errors=True)
    code, *loaded = out.stdout.split()
    ours = {"plugin", "plugin.hook", "companion", "companion.control", "companion.spool", "companion.errors"}
    foreign = [m for m in loaded if m not in ours and m.split(".")[0] not in sys.stdlib_module_names]
    assert code == "0" and foreign == []


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


def test_hook_rejects_a_call_it_cannot_use_and_spools_nothing(tmp_path):
    bad = subprocess.run([HOOK, "--home", str(tmp_path), "exploded"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr
    marker = tmp_path / "chained"
    for hashes in (["", ""], ["-", "-"], ["xyz", "-"], ["aa" * 19, "bb" * 31]):
        bad = subprocess.run([HOOK, "--home", str(tmp_path), "added", *hashes, "n", "/srv", "/srv/n", "--",
                              "/usr/bin/touch", str(marker)], capture_output=True, text=True)
        assert bad.returncode == 2 and "no valid info hash" in bad.stderr and "nothing sent or spooled" in bad.stderr
        assert spool.pending(tmp_path / "spool") == []
    wait_until(marker.exists, 10, what="the chained program, started whatever seedward decided")


def test_spool_moves_bad_entries_aside_and_keeps_good_ones(tmp_path):
    """Garbage, a directory, a symlink, an oversized file and events with a bad schema go to spool/bad/
    with the reason; valid events around them are handled."""
    folder = tmp_path / "spool"
    good = spool.append(folder, {"event": "added", "hash": V1, "hash_v2": "", "name": "a", "save_path": "/s",
                                 "content_path": "/s/a"})
    bad = {
        "00000000000000000001-1-a.json": b"{not json",
        "00000000000000000002-1-b.json": b'{"event": "added", "hash": "", "hash_v2": ""}',
        "00000000000000000003-1-c.json": b'{"event": "removed", "hash": "' + V1.encode() + b'"}',
        "00000000000000000004-1-d.json": b'{"event": "added", "hash": 7}',
        "00000000000000000005-1-e.json": b'{"event": "added", "hash": "' + V1.encode() + b'", "x": 1}',
        "00000000000000000006-1-f.json": b"[1, 2]",
        "00000000000000000007-1-g.json": b" " * (spool.MAX_EVENT_BYTES + 1),
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    (folder / "00000000000000000008-1-h.json").mkdir()
    (folder / "00000000000000000009-1-i.json").symlink_to(good)
    seen, rejected = [], []
    assert spool.drain(folder, seen.append, on_bad=lambda moved, why: rejected.append((moved.name, why))) == 1
    assert [e["hash"] for e in seen] == [V1]
    assert sorted(name for name, _ in rejected) == sorted([*bad, "00000000000000000008-1-h.json",
                                                           "00000000000000000009-1-i.json"])
    whys = dict(rejected)
    assert "not JSON" in whys["00000000000000000001-1-a.json"]
    assert "no valid info hash" in whys["00000000000000000002-1-b.json"]
    assert "'added' or 'finished'" in whys["00000000000000000003-1-c.json"]
    assert "hash must be a string" in whys["00000000000000000004-1-d.json"]
    assert "unknown field 'x'" in whys["00000000000000000005-1-e.json"]
    assert "more than" in whys["00000000000000000007-1-g.json"]
    assert "not a regular file" in whys["00000000000000000008-1-h.json"]
    assert "not a regular file" in whys["00000000000000000009-1-i.json"]
    assert spool.pending(folder) == []
    assert (folder / "bad" / "00000000000000000001-1-a.json.why").read_text().startswith("unusable hook event")


def test_a_handler_that_keeps_failing_is_retried_then_moved_aside(tmp_path):
    folder = tmp_path / "spool"
    spool.append(folder, {"event": "finished", "hash": V1})
    tries: dict = {}
    rejected = []

    def broken(event):
        raise OSError("disk full")

    for _ in range(spool.MAX_TRIES):
        assert spool.pending(folder)  # kept until the last try
        assert spool.drain(folder, broken, on_bad=lambda moved, why: rejected.append(why), tries=tries) == 0
    assert spool.pending(folder) == [] and rejected == [f"the service failed on it {spool.MAX_TRIES} times: disk full"]


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


def queued(service) -> list[str]:
    """Torrents with a protect job, whatever became of it (qBittorrent is unreachable here)."""
    return [r["torrent_id"] for r in service.catalog.query("SELECT torrent_id FROM queue WHERE kind = 'protect'")]


@pytest.fixture
def gone_service():
    """start() -> the real Service with qBittorrent unreachable (the spool and the socket need no qBittorrent)."""
    import tempfile

    from companion.demo.private_qbt import free_port
    from companion.service import Service
    from tests.qbt import service_settings

    class Gone:
        url, username, password = f"http://127.0.0.1:{free_port()}", "nobody", "x"

    root = Path(tempfile.mkdtemp(prefix="sw-hook-", dir="/tmp"))
    started = []

    def start():
        started.append(Service(Home(root / "home"), service_settings(Gone)).start())
        return started[-1]

    yield root / "home", start
    for service in started:
        service.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_the_service_always_starts_and_never_loops_on_a_bad_spool(gone_service):
    """What took `seedward serve` down (an event without a hash: exit 2; a directory named *.json:
    IsADirectoryError) is moved to spool/bad/ with one spool_bad event each; the good event is queued."""
    root, start = gone_service
    home = Home(root).ensure()
    good = spool.append(home.spool, {"event": "added", "hash": V1, "hash_v2": "", "name": "ok", "save_path": "/s",
                                     "content_path": "/s/ok"})
    (home.spool / "00000000000000000001-1-nohash.json").write_text(json.dumps(
        {"event": "added", "hash": "", "hash_v2": "", "name": "", "save_path": "", "content_path": ""}))
    (home.spool / "00000000000000000002-1-dir.json").mkdir()
    service = start()
    assert spool.pending(home.spool) == [] and not good.exists()
    assert queued(service) == [V1]
    bad = sorted(p.name for p in (home.spool / "bad").iterdir())
    assert bad == ["00000000000000000001-1-nohash.json", "00000000000000000001-1-nohash.json.why",
                   "00000000000000000002-1-dir.json", "00000000000000000002-1-dir.json.why"]
    said = [e for e in service.catalog.events() if e["kind"] == "spool_bad"]
    assert len(said) == 2 and all(e["level"] == "warning" for e in said)
    assert any("no valid info hash" in e["message"] for e in said)
    assert any("not a regular file" in e["message"] for e in said)
    for _ in range(3):  # every sync drains the spool: nothing is said twice
        service.drain_spool()
    assert len([e for e in service.catalog.events() if e["kind"] == "spool_bad"]) == 2


def test_an_entry_that_cannot_be_moved_aside_is_said_once_then_skipped(gone_service):
    root, start = gone_service
    home = Home(root).ensure()
    (home.spool / "bad").write_text("a file where the folder should be")
    (home.spool / "00000000000000000001-1-x.json").write_text("{not json")
    service = start()
    for _ in range(3):
        service.drain_spool()
    said = [e for e in service.catalog.events() if e["kind"] == "spool_bad"]
    assert len(said) == 1 and "left there, skipped" in said[0]["message"]
    assert (home.spool / "00000000000000000001-1-x.json").exists()


def test_with_the_service_up_the_hook_hands_the_event_over_and_never_spools_a_bad_one(gone_service):
    root, start = gone_service
    service = start()
    done = subprocess.run([HOOK, "--home", str(root), "added", V1, V2, "Up", "/srv", "/srv/Up"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert spool.pending(service.home.spool) == []
    assert queued(service) == [V2[:40]]
    bad = subprocess.run([HOOK, "--home", str(root), "added", "", "", "", "", ""], capture_output=True, text=True)
    assert bad.returncode == 2 and "no valid info hash" in bad.stderr
    assert spool.pending(service.home.spool) == [] and queued(service) == [V2[:40]]
    # the service refuses a bad event sent straight to the socket, and says why
    from companion.control import ControlError, request

    with pytest.raises(ControlError, match="hook: no valid info hash"):
        request(service.home, "hook", event="added", hash="", hash_v2="")


@pytest.mark.qbt
def test_bad_spool_entries_never_loop_the_sync_with_real_qbittorrent(qbt, make_service, tmp_path):
    """The reported loop: a bad spooled event made every sync raise (qBittorrent shown `error`, a
    reconnect and re-login every backoff, the removed-torrent audit never run). Now: bad entries are
    moved aside once, the sync stays connected for many rounds, the audit runs, no error is emitted."""
    home = Home(tmp_path / "home").ensure()
    (home.spool / "00000000000000000001-1-nohash.json").write_text(json.dumps(
        {"event": "added", "hash": "", "hash_v2": "", "name": "", "save_path": "", "content_path": ""}))
    (home.spool / "00000000000000000002-1-dir.json").mkdir()
    (home.spool / "00000000000000000003-1-junk.json").write_bytes(b"\xff\xfe not json")
    service = make_service(home=home.root)
    syncs = service.sync.syncs
    wait_until(lambda: service.sync.syncs >= syncs + 10, 30, what="ten syncs")
    wait_until(lambda: service.sync.audit_at is None, 30, what="the removed-torrent audit after the grace")
    assert service.sync.state == "connected" and service.sync.error is None
    kinds = [e["kind"] for e in service.catalog.events()]
    assert kinds.count("spool_bad") == 3
    assert not {"qbt_error", "qbt_unreachable", "qbt_login_failed"} & set(kinds)
    assert kinds.count("qbt_connected") == 1  # no reconnect loop
    assert spool.pending(home.spool) == []
