"""Several qBittorrent instances followed by one seedward (issue 17 item 2), with two real qbittorrent-nox:
ids stay the torrent hash, a torrent both hold at the same place is one payload protected once and
stopped, healed and resumed in both; each instance has its own login record, its own `--instance`
verbs, and a torrent leaves the catalog only when no instance holds it."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from companion.config import Policy, QbtSettings, Settings
from companion.control import request
from companion.demo.private_qbt import QbtProcess
from companion.home import Home
from companion.service import Service
from tests.helpers import flip_byte, make_torrent, seedward, wait_until, write_payload
from tests.qbt import qbt_tags

pytestmark = [pytest.mark.qbt, pytest.mark.slow]


@pytest.fixture(scope="module")
def second(tmp_path_factory):
    proc = QbtProcess(tmp_path_factory.mktemp("qbittorrent-b"))
    proc.start()
    yield proc
    proc.stop()


def instance(qbt, name: str) -> QbtSettings:
    return QbtSettings(url=qbt.url, username=qbt.username, password=qbt.password, poll_seconds=0.2,
                       backoff_max_seconds=2.0, name=name)


def two_instances(a, b) -> Settings:
    s = Settings()
    s.instances = [instance(a, "main"), instance(b, "disk2")]
    s.qbittorrent = s.instances[0]
    s.service.removal_grace_seconds = 1.0
    s.service.reach_seconds = 0.5
    s.scrub.interval_hours = 0
    s.protection.categories = {"hold": Policy(response="quarantine")}
    return s


def start(settings, home: Path, drift: bool = False) -> Service:
    """The service; with drift, the snapshots and the drift component too (watch, heal, qBittorrent steps)."""
    s = Service(Home(home), settings)
    if drift:
        from companion.drift.service import install
        from companion.store.job import register as register_snapshots

        register_snapshots(s)
        install(s)
    return s.start()


def seeding(proc, tid: str) -> bool:
    found = proc.client.torrents_info(torrent_hashes=tid)
    return bool(found) and found[0]["progress"] >= 1 and not found[0]["state"].startswith(("paused", "stopped"))


def stopped(proc, tid: str) -> bool:
    found = proc.client.torrents_info(torrent_hashes=tid)
    return bool(found) and found[0]["state"].startswith(("paused", "stopped"))


def protection(s: Service, tid: str) -> str | None:
    row = s.catalog.get_torrent(tid)
    return row["protection"] if row else None


@pytest.fixture
def world(qbt, second, tmp_path):
    qbt.remove_all()
    second.remove_all()
    root = tmp_path
    made = {}
    for name, files, where in (("OnlyA", {"a.bin": 30_000}, "a"), ("OnlyB", {"b.bin": 35_000}, "b"),
                               ("Both", {"x.flac": 70_000, "y.flac": 40_000}, "ab")):
        content = write_payload(root / "dl" / name, files, seed=len(name))
        torrent = make_torrent(content, piece_size=16384, kind="hybrid", out=root / f"{name}.torrent")
        ids = {(qbt if w == "a" else second).add_torrent(torrent, root / "dl") for w in where}
        (made[name],) = ids
    yield {"root": root, "ids": made}
    qbt.remove_all()
    second.remove_all()


def test_one_service_follows_both_and_a_shared_torrent_is_one_payload(qbt, second, world):
    ids = world["ids"]
    s = start(two_instances(qbt, second), world["root"] / "home")
    try:
        wait_until(lambda: all(protection(s, t) == "protected" for t in ids.values()) and not s.catalog.pending_jobs(),
                   60, what="every torrent of both instances protected")
        rows = {r["id"]: r for r in s.catalog.list_torrents()}
        assert set(rows) == set(ids.values())  # ids are the hashes; the shared torrent is one row
        assert rows[ids["OnlyA"]]["instance"] in ("main", "") and rows[ids["OnlyB"]]["instance"] == "disk2"
        status = request(s.home, "status")
        entries = {t["id"]: t for t in status["torrents"]}
        assert entries[ids["Both"]]["instances"] == ["main", "disk2"] and entries[ids["Both"]]["instance"] == "main"
        assert entries[ids["OnlyB"]]["instances"] == ["disk2"]
        svc = {i["name"]: i for i in status["service"]["instances"]}
        assert svc["main"]["state"] == svc["disk2"]["state"] == "connected" and svc["disk2"]["url"] == second.url
        assert status["service"]["qbittorrent"]["state"] == "connected"
        for proc in (qbt, second):  # both instances carry the state tag of the one payload
            wait_until(lambda: "seedward:protected" in qbt_tags(proc, ids["Both"]), 30, what="the tag in both")
        table = seedward("status", home=s.home.root).stdout
        assert "disk2" in table and "@main+disk2" in table
        # the host hook of the second instance says which one called (its line has --instance disk2)
        import shutil
        import subprocess
        import sys

        hook = shutil.which("seedward-hook") or str(Path(sys.executable).parent / "seedward-hook")
        run = subprocess.run([hook, "--home", str(s.home.root), "--instance", "disk2", "finished", ids["OnlyB"], "-",
                              "OnlyB", str(world["root"] / "dl"), str(world["root"] / "dl" / "OnlyB")],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        event = wait_until(lambda: next((e for e in s.catalog.events(ids["OnlyB"]) if e["kind"] == "hook"), None), 30,
                           what="the hook event")
        assert json.loads(event["detail"])["instance"] == "disk2" and json.loads(event["detail"])["source"] == "socket"
    finally:
        s.stop()


def test_drift_in_a_shared_payload_stops_both_and_the_heal_resumes_both(qbt, second, world):
    ids = world["ids"]
    tid = ids["Both"]
    for proc in (qbt, second):  # the session's qBittorrent: another file may have made it
        if "hold" not in proc.client.torrents_categories():
            proc.client.torrents_create_category(name="hold")
    for proc in (qbt, second):
        proc.client.torrents_set_category(category="hold", torrent_hashes=tid)
    s = start(two_instances(qbt, second), world["root"] / "home", drift=True)
    try:
        wait_until(lambda: protection(s, tid) == "protected" and not s.catalog.pending_jobs(), 60, what="protected")
        wait_until(lambda: s.sync.get(tid) and s.sync.get(tid)["instances"] == ["main", "disk2"], 30,
                   what="both instances in the view")
        target = world["root"] / "dl" / "Both" / "x.flac"
        original = target.read_bytes()
        flip_byte(target, 20_000)  # under the quarantine policy: stopped everywhere, kept stopped
        wait_until(lambda: stopped(qbt, tid) and stopped(second, tid), 60, what="both instances stopped")
        wait_until(lambda: protection(s, tid) == "damaged", 60, what="damaged")
        for proc in (qbt, second):
            wait_until(lambda: "seedward:damaged" in qbt_tags(proc, tid), 30, what="the damaged tag in both")
        # qbit_manage's "recheck" (or resume all) starts it in one instance: seedward stops it again there
        second.client.torrents_start(torrent_hashes=tid)
        wait_until(lambda: any(e["kind"] == "restopped" for e in s.catalog.events(tid)), 60,
                   what="seedward to stop it again")
        wait_until(lambda: stopped(second, tid) and stopped(qbt, tid), 60, what="stopped again in the second instance")
        # the heal (from the snapshot) writes the one payload once, then both seed again
        out = request(s.home, "restore", id=tid)
        assert out["outcome"] == "healed", out
        assert target.read_bytes() == original
        wait_until(lambda: seeding(qbt, tid) and seeding(second, tid) and protection(s, tid) == "protected", 90,
                   what="both instances seeding again, protected")
        for proc in (qbt, second):
            wait_until(lambda: "seedward:protected" in qbt_tags(proc, tid)
                       and "seedward:damaged" not in qbt_tags(proc, tid), 30, what="the tags in both")
    finally:
        s.stop()


def test_removed_only_when_no_instance_holds_it(qbt, second, world):
    ids = world["ids"]
    tid = ids["Both"]
    s = start(two_instances(qbt, second), world["root"] / "home")
    try:
        wait_until(lambda: all(protection(s, t) == "protected" for t in ids.values()), 60, what="protected")
        qbt.client.torrents_delete(delete_files=False, torrent_hashes=tid)
        wait_until(lambda: s.sync.get(tid) and s.sync.get(tid)["instances"] == ["disk2"], 30, what="only disk2 has it")
        syncs = s.sync.syncs
        wait_until(lambda: s.sync.syncs > syncs + 10, 30, what="more syncs")
        assert s.catalog.get_torrent(tid)["removed_at"] is None and protection(s, tid) == "protected"
        second.client.torrents_delete(delete_files=False, torrent_hashes=tid)
        wait_until(lambda: s.catalog.get_torrent(tid)["removed_at"], 30, what="removed once neither has it")
        # an instance that goes away does not make its torrents "removed": it is just not connected
        second.stop()
        try:
            wait_until(lambda: {i["name"]: i["state"] for i in request(s.home, "status")["service"]["instances"]}["disk2"]
                       != "connected", 30, what="disk2 down")
            assert s.sync.state != "connected" and "disk2" in (s.sync.error or "")
            assert s.catalog.get_torrent(ids["OnlyB"])["removed_at"] is None
            assert protection(s, ids["OnlyA"]) == "protected"
        finally:
            second.start()
        wait_until(lambda: s.sync.state == "connected", 60, what="disk2 back")
        assert s.catalog.get_torrent(ids["OnlyB"])["removed_at"] is None
    finally:
        s.stop()


def test_each_instance_has_its_own_login_record_and_verbs(qbt, second, world, tmp_path):
    """The CLI's qBittorrent verbs take --instance (default: every instance); a refused password on
    one instance spends only that instance's login budget."""
    home = tmp_path / "cli-home"
    home.mkdir()
    good, other = tmp_path / "main-password", tmp_path / "disk2-password"
    good.write_text(qbt.password + "\n")
    other.write_text(second.password + "\n")
    (home / "config.toml").write_text(
        f'[qbittorrent]\nusername = "{qbt.username}"\n\n'
        f'[[instances]]\nname = "main"\nurl = "{qbt.url}"\npassword_file = "{good}"\n\n'
        f'[[instances]]\nname = "disk2"\nurl = "{second.url}"\npassword_file = "{other}"\n')
    out = seedward("qbt", "backup", "--json", home=home)
    assert out.returncode == 0, out.stderr
    docs = {d["instance"]: d for d in json.loads(out.stdout)["instances"]}
    assert docs["main"]["torrents"] == 2 and docs["disk2"]["torrents"] == 2
    assert (home / "manifests" / "qbittorrent" / "state.json").is_file()  # the first keeps the one-instance layout
    assert (home / "manifests" / "qbittorrent.disk2" / "state.json").is_file()
    out = seedward("qbt", "install-hook", "--instance", "disk2", "--json", home=home)
    assert out.returncode == 0, out.stderr
    program = second.client.app_preferences()["autorun_on_torrent_added_program"]
    assert '--instance "disk2"' in program and "seedward-hook" in program
    assert "seedward" not in (qbt.client.app_preferences().get("autorun_on_torrent_added_program") or "")
    assert seedward("qbt", "uninstall-hook", "--instance", "disk2", home=home).returncode == 0
    assert "seedward" not in (second.client.app_preferences().get("autorun_on_torrent_added_program") or "")
    out = seedward("qbt", "login", "--instance", "nope", home=home)
    assert out.returncode == 2 and "no qBittorrent instance named 'nope'" in out.stderr

    other.write_text("not-the-password\n")
    out = seedward("qbt", "login", "--instance", "disk2", home=home)
    assert out.returncode == 4 and "login refused" in out.stderr
    record = json.loads((home / "qbt-login.json").read_text())  # one record per instance (user@url)
    assert len(record[f"{second.username}@{second.url}"]["failures"]) == 1
    assert not (record.get(f"{qbt.username}@{qbt.url}") or {}).get("failures")
    out = seedward("qbt", "login", "--json", home=home)  # every instance: disk2 fails again, main logs in
    assert out.returncode == 4
    results = {r["instance"]: r for r in json.loads(out.stdout)["instances"]}
    assert results["main"]["logged_in"] and not results["disk2"]["logged_in"]
    # disk2's budget is spent (two failures per ban window): no third try; main is not affected
    out = seedward("qbt", "login", "--instance", "disk2", home=home)
    assert out.returncode == 4 and "2 failed logins" in out.stderr
    record = json.loads((home / "qbt-login.json").read_text())
    assert len(record[f"{second.username}@{second.url}"]["failures"]) == 2
    out = seedward("qbt", "login", "--instance", "main", "--json", home=home)
    assert out.returncode == 0 and json.loads(out.stdout)["logged_in"]


def test_a_refused_login_on_one_instance_leaves_the_other_protected(qbt, second, world):
    ids = world["ids"]
    from companion.metrics import register as register_metrics
    from prometheus_client.parser import text_string_to_metric_families
    import urllib.request

    settings = two_instances(qbt, second)
    settings.instances[1] = replace(settings.instances[1], password="wrong")
    settings.metrics.listen = "127.0.0.1:0"
    s = Service(Home(world["root"] / "home"), settings)
    register_metrics(s)
    s.start()
    try:
        wait_until(lambda: protection(s, ids["OnlyA"]) == "protected" and protection(s, ids["Both"]) == "protected",
                   60, what="main's torrents protected")
        states = {i["name"]: i for i in request(s.home, "status")["service"]["instances"]}
        assert states["disk2"]["state"] == "login_failed" and states["main"]["state"] == "connected"
        assert states["disk2"]["login"]["failures_in_window"] == 1
        assert protection(s, ids["OnlyB"]) is None  # never seen: not guessed
        port = next(c.port for c in s.components if getattr(c, "port", None))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            text = r.read().decode()
        up = {x.labels["instance"]: x.value for f in text_string_to_metric_families(text)
              if f.name == "seedward_qbittorrent_instance_up" for x in f.samples}
        assert up == {"main": 1.0, "disk2": 0.0}
    finally:
        s.stop()


def test_stop_and_start_one_instance_or_every_one_holding_it(qbt, second, world):
    tid = world["ids"]["Both"]
    s = start(two_instances(qbt, second), world["root"] / "home", drift=True)
    try:
        wait_until(lambda: protection(s, tid) == "protected" and not s.catalog.pending_jobs(), 60, what="protected")
        wait_until(lambda: s.sync.get(tid) and s.sync.get(tid)["instances"] == ["main", "disk2"], 30, what="both")
        out = seedward("stop", tid[:12], "--instance", "disk2", "--json", home=s.home.root)
        assert out.returncode == 0, out.stderr
        wait_until(lambda: stopped(second, tid), 30, what="stopped in disk2")
        assert seeding(qbt, tid)  # only the instance named
        out = seedward("start", tid[:12], "--json", home=s.home.root)
        assert out.returncode == 0 and json.loads(out.stdout)["via"] == "service", out.stderr
        wait_until(lambda: seeding(qbt, tid) and seeding(second, tid), 30, what="both seeding")
        out = seedward("stop", tid[:12], "--json", home=s.home.root)
        assert out.returncode == 0, out.stderr
        wait_until(lambda: stopped(qbt, tid) and stopped(second, tid), 30, what="stopped in both")
        out = seedward("start", tid[:12], "--instance", "nope", home=s.home.root)
        assert out.returncode == 2 and "no qBittorrent instance named 'nope'" in out.stderr
        assert seedward("start", tid[:12], home=s.home.root).returncode == 0
        wait_until(lambda: seeding(qbt, tid) and seeding(second, tid), 30, what="both seeding again")
    finally:
        s.stop()


def test_archive_sets_carry_each_instances_state_and_restore_each_torrent_to_its_own(qbt, second, world, tmp_path):
    """`archive create` carries every instance's qBittorrent state (scheduled runs refresh each one's
    folder); `archive restore --into-qbittorrent` gives each torrent back to the instance that had it."""
    ids = world["ids"]
    home = tmp_path / "arch-home"
    home.mkdir()
    pa, pb = tmp_path / "pa", tmp_path / "pb"
    pa.write_text(qbt.password + "\n")
    pb.write_text(second.password + "\n")
    remote = tmp_path / "remote"
    (home / "config.toml").write_text(
        f'[qbittorrent]\nusername = "{qbt.username}"\n\n'
        f'[[instances]]\nname = "main"\nurl = "{qbt.url}"\npassword_file = "{pa}"\n\n'
        f'[[instances]]\nname = "disk2"\nurl = "{second.url}"\npassword_file = "{pb}"\n\n'
        f'[archive]\nremote = "{remote}"\nvolume_kb = 64\n')
    (tmp_path / "pass").write_text("correct horse battery staple\n")
    for name in ("OnlyA", "OnlyB"):
        seedward("catalog", "add", world["root"] / f"{name}.torrent", world["root"] / "dl", home=home, check=True)
        seedward("snapshot", ids[name], home=home, check=True)
    assert seedward("qbt", "backup", home=home).returncode == 0
    r = seedward("archive", "create", "--tier", "weekly", "--passphrase-file", tmp_path / "pass", "--json", home=home)
    assert r.returncode == 0, r.stderr
    set_id = json.loads(r.stdout)["set_id"]
    qbt.remove_all()
    second.remove_all()
    to = tmp_path / "restored"
    r = seedward("archive", "restore", set_id, "--remote", remote, "--to", to, "--passphrase-file", tmp_path / "pass",
                 "--into-qbittorrent", "--json", home=home)
    assert r.returncode == 0, r.stderr
    added = {a["hash"] for a in json.loads(r.stdout)["qbittorrent"]["added"]}
    assert added == {ids["OnlyA"], ids["OnlyB"]}
    wait_until(lambda: qbt.client.torrents_info(torrent_hashes=ids["OnlyA"]), 30, what="OnlyA back in main")
    wait_until(lambda: second.client.torrents_info(torrent_hashes=ids["OnlyB"]), 30, what="OnlyB back in disk2")
    assert not qbt.client.torrents_info(torrent_hashes=ids["OnlyB"])
    assert not second.client.torrents_info(torrent_hashes=ids["OnlyA"])
    assert second.client.torrents_info(torrent_hashes=ids["OnlyB"])[0]["save_path"].rstrip("/") == \
        str(to / "payload" / ids["OnlyB"])
