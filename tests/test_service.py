"""The service against a real qbittorrent-nox: every complete torrent ends up protected."""

import json
import os
import time

import pytest

from companion.catalog import Catalog
from companion.config import Policy
from companion.control import request
from companion.manifests import torrent_relpath
from tests.helpers import flip_byte, make_torrent, seedward, wait_until, write_payload
from tests.qbt import qbt_tags, seed_sample, service_settings, torrent_states, wait_states

pytestmark = pytest.mark.qbt


def runs(catalog, torrent_id):
    return catalog.query("SELECT * FROM runs WHERE torrent_id = ?", (torrent_id,))


def test_fifty_torrents_added_through_the_api_are_all_protected(qbt, make_service, tmp_path):
    service = make_service()
    data = tmp_path / "data"
    ids = []
    for i in range(50):
        kind = ("v1", "v2", "hybrid")[i % 3]
        if i % 2:  # a folder of two files
            content = write_payload(data / f"t{i:02}", {"a.bin": 3000 + 97 * i, "b/c.bin": 20_000 + i}, seed=i)
        else:  # a single-file torrent
            content = write_payload(data, {f"t{i:02}.bin": 17_000 + i}, seed=i) / f"t{i:02}.bin"
        torrent = make_torrent(content, kind=kind, out=data / f"t{i:02}.torrent")
        ids.append(qbt.add_torrent(torrent, data, wait=False))
    wait_states(service, ids, "protected", timeout=120)

    for h in ids:
        row = service.catalog.get_torrent(h)
        assert row["last_verified"] and row["qbt_state"] in ("stalledUP", "uploading")
        assert [r["ok"] for r in runs(service.catalog, h)] == [1]  # hashed exactly once
        assert (service.home.torrents / f"{h}.torrent").exists()
        assert (service.home.manifests / torrent_relpath(h)).exists()
        assert "seedward:protected" in qbt_tags(qbt, h)

    # `seedward status --json` through the running service: live qBittorrent data included
    out = seedward("status", "--json", home=service.home.root, check=True)
    status = json.loads(out.stdout)
    assert status["service"]["running"] is True
    assert status["service"]["qbittorrent"]["state"] == "connected"
    by_id = {t["id"]: t for t in status["torrents"]}
    assert set(ids) <= set(by_id)
    for h in ids:
        t = by_id[h]
        assert t["protection"] == "protected" and t["qbt_state"] in ("stalledUP", "uploading")
        assert t["last_verified"] and t["size"] > 0
        assert h in ((t["info_hash_v2"] or "")[:40], t["info_hash_v1"])

    # without the service: the catalog alone answers
    service.stop()
    out = seedward("status", "--json", home=service.home.root, check=True)
    offline = json.loads(out.stdout)
    assert offline["service"]["running"] is False
    assert {t["id"]: t["protection"] for t in offline["torrents"] if t["id"] in ids} == {h: "protected" for h in ids}
    text = seedward("status", home=service.home.root, check=True).stdout
    assert "not running" in text and "50 protected" in text


def test_baseline_bad_payload_is_reported_and_never_kept_as_baseline(qbt, make_service, tmp_path):
    service = make_service()
    content = write_payload(tmp_path / "data" / "bad", {"x.bin": 100_000, "y.bin": 5000})
    torrent = make_torrent(content, kind="v1")
    flip_byte(content / "x.bin", 50_000)
    # qBittorrent is told to skip its check, so it seeds the bad payload as complete
    h = qbt.add_torrent(torrent, tmp_path / "data", skip_checking=True)
    wait_states(service, [h], "baseline_bad")

    assert service.catalog.get_files(h) == []  # no baseline stored
    assert service.catalog.get_torrent(h)["last_verified"] is None
    assert qbt_tags(qbt, h) & {"seedward:baseline-bad"}
    events = [e for e in service.catalog.events(h) if e["kind"] == "baseline_bad"]
    assert events and events[0]["level"] == "error"
    assert 50_000 // 16384 in json.loads(events[0]["detail"])["bad_pieces"]


def test_rename_and_set_location_are_followed_without_rehashing(qbt, make_service, tmp_path):
    service = make_service(sweep_minutes=0.01)
    h, _ = seed_sample(qbt, tmp_path / "data", "album", {"a.bin": 40_000, "sub/b.bin": 25_000})
    wait_states(service, [h])
    assert len(runs(service.catalog, h)) == 1

    qbt.client.torrents_rename_file(torrent_hash=h, old_path="album/a.bin", new_path="album/renamed.bin")
    wait_until(lambda: any(f["path"] == "album/renamed.bin" for f in service.catalog.get_files(h)), 30,
               what="the catalog to follow the rename")

    moved_to = tmp_path / "moved"
    moved_to.mkdir()
    qbt.client.torrents_set_location(location=str(moved_to), torrent_hashes=h)
    wait_until(lambda: service.catalog.get_torrent(h)["save_path"] == str(moved_to), 90,
               what="the catalog to follow setLocation")  # qBittorrent moves the files first (slow when loaded)
    wait_until(lambda: not service.catalog.pending_jobs(), 30, what="an idle queue")

    assert (moved_to / "album" / "renamed.bin").exists()
    assert len(runs(service.catalog, h)) == 1  # followed by stat, not re-hashed
    assert service.catalog.get_torrent(h)["protection"] == "protected"
    kinds = [e["kind"] for e in service.catalog.events(h)]
    assert kinds.count("relocated") >= 2
    manifest = json.loads((service.home.manifests / torrent_relpath(h)).read_text())
    assert sorted(f["path"] for f in manifest["files"]) == ["album/renamed.bin", "album/sub/b.bin"]

    # A snapshot after the rename and the move finds the files where qBittorrent has them.
    from companion.catalog import snapshots as snapshot_rows
    from companion.store.job import register as register_snapshots

    register_snapshots(service)
    service.enqueue("snapshot", h, reason="manual")
    snaps = wait_until(lambda: snapshot_rows.list_snapshots(service.catalog, h), 60, what="a snapshot")
    paths = sorted(r["path"] for r in snapshot_rows.snapshot_files(service.catalog, snaps[-1]["id"]))
    assert paths == ["album/renamed.bin", "album/sub/b.bin"]


def test_removed_torrent_is_marked_removed_and_keeps_its_history(qbt, make_service, tmp_path):
    service = make_service()
    h, _ = seed_sample(qbt, tmp_path / "data", "gone")
    wait_states(service, [h])
    qbt.client.torrents_delete(delete_files=False, torrent_hashes=h)
    wait_until(lambda: service.catalog.get_torrent(h)["protection"] == "removed", 30, what="removal")
    row = service.catalog.get_torrent(h)
    assert row["removed_at"]
    assert len(runs(service.catalog, h)) == 1 and service.catalog.get_files(h)
    status = request(service.home, "status")
    assert {t["id"]: t["protection"] for t in status["torrents"]}[h] == "removed"

    # removed while the service was down: found by the audit after the removal grace
    h2, _ = seed_sample(qbt, tmp_path / "data", "gone-too", seed=2)
    wait_states(service, [h2])
    service.stop()
    qbt.client.torrents_delete(delete_files=False, torrent_hashes=h2)
    again = make_service(home=service.home.root)
    wait_until(lambda: again.catalog.get_torrent(h2)["protection"] == "removed", 30, what="the removal audit")
    assert again.catalog.get_torrent(h)["protection"] == "removed"


def test_protection_levels_per_category_and_tag(qbt, make_service, tmp_path):
    settings = service_settings(qbt)
    settings.protection.categories["scratch"] = Policy(level="exclude")
    settings.protection.tags["light"] = Policy(level="catalog")
    service = make_service(settings=settings)
    snapshots = []
    # the snapshot seam: the store registers this job kind; here a stand-in records the request
    service.register_job("snapshot", lambda svc, job: snapshots.append(job.torrent_id))
    data = tmp_path / "data"
    excluded, _ = seed_sample(qbt, data, "ex", seed=1, category="scratch")
    light, _ = seed_sample(qbt, data, "light", seed=2, tags="light")
    full, _ = seed_sample(qbt, data, "full", seed=3)
    wait_states(service, [light, full])
    wait_states(service, [excluded], "excluded")

    assert runs(service.catalog, excluded) == []
    assert "seedward:excluded" in qbt_tags(qbt, excluded)
    assert service.catalog.get_torrent(light)["policy"] == "catalog"
    done = {r["torrent_id"] for r in service.catalog.query("SELECT * FROM queue WHERE kind = 'snapshot' AND state = 'done'")}
    assert done == {full} and snapshots == [full]

    # moving it out of the excluded category protects it
    qbt.client.torrents_set_category(category="", torrent_hashes=excluded)
    wait_states(service, [excluded])
    assert [r["ok"] for r in runs(service.catalog, excluded)] == [1]


def test_control_socket_ops_and_event_stream(qbt, make_service, tmp_path):
    from companion.control import ControlError, subscribe

    service = make_service()
    assert oct(service.home.socket.stat().st_mode & 0o777) == "0o600"
    assert request(service.home, "ping")["pid"] > 0
    stream = subscribe(service.home, timeout=30)
    h, _ = seed_sample(qbt, tmp_path / "data", "evented")
    seen = []
    for event in stream:
        seen.append(event)
        if event["event"] == "protected" and event["torrent_id"] == h:
            break
    stream.close()
    assert any(e["event"] == "protected" for e in seen)
    wait_states(service, [h])
    events = request(service.home, "events", since=0)["events"]
    assert any(e["kind"] == "protected" and e["torrent_id"] == h for e in events)
    assert request(service.home, "events", since=events[-1]["id"])["events"] == []
    newest = request(service.home, "events", last=2)["events"]
    assert [e["id"] for e in newest] == [e["id"] for e in events[-2:]]
    assert {e["torrent_id"] for e in request(service.home, "events", torrent_id=h)["events"]} == {h}

    service.on_status(lambda st: st["service"].setdefault("extra", "from a feature"))
    service.on_status(lambda st: 1 / 0)  # a broken extension is skipped
    status = request(service.home, "status")
    assert status["service"]["extra"] == "from a feature"
    assert [t["seeds"] for t in status["torrents"] if t["id"] == h] == [0]

    job = request(service.home, "action", action="verify", id=h[:8])
    assert job["id"] == h and job["job"]
    wait_until(lambda: len(runs(service.catalog, h)) == 2 and not service.catalog.pending_jobs(), 30,
               what="the forced verify")
    request(service.home, "action", action="stop", id=h)
    wait_until(lambda: qbt.client.torrents_info(torrent_hashes=h)[0]["state"] in ("pausedUP", "stoppedUP"), 30,
               what="qBittorrent to stop the torrent")
    with pytest.raises(ControlError, match="unknown op"):
        request(service.home, "nonsense")
    with pytest.raises(ControlError, match="no installed feature"):
        request(service.home, "action", action="drill", id=h)


def test_qbittorrent_restart_mid_run(qbt, make_service, tmp_path):
    service = make_service()
    data = tmp_path / "data"
    first = [seed_sample(qbt, data, f"before{i}", seed=10 + i)[0] for i in range(3)]
    wait_states(service, first)
    syncs = service.sync.syncs
    qbt.stop()  # down long enough for the service to notice, then back with the same profile and port
    wait_until(lambda: service.sync.state == "unreachable", 30, what="the service to see qBittorrent gone")
    qbt.start()
    wait_until(lambda: service.sync.state == "connected" and service.sync.syncs > syncs, 60, what="reconnect")
    later = [seed_sample(qbt, data, f"after{i}", seed=20 + i)[0] for i in range(3)]
    wait_states(service, first + later)
    # a quick restart between two polls: the session cookie and rid are stale, nothing else
    qbt.restart()
    later.append(seed_sample(qbt, data, "after-quick", seed=30)[0])
    wait_states(service, first + later)
    # after the removal grace, nothing was wrongly marked removed
    wait_until(lambda: service.sync.audit_at is None, 30, what="the removal audit")
    assert torrent_states(service.catalog, first + later) == {h: "protected" for h in first + later}
    for h in first + later:
        assert len(runs(service.catalog, h)) == 1  # no duplicate work after the resync
    kinds = [e["kind"] for e in service.catalog.events()]
    assert "qbt_unreachable" in kinds and kinds.count("qbt_connected") >= 2


def test_wrong_password_is_reported_without_a_login_storm(qbt, make_service, tmp_path):
    failures_before = qbt.log_file.read_text(errors="replace").count("WebAPI login failure")
    service = make_service(password="not-the-password")
    wait_until(lambda: service.sync.state == "login_failed", 30, what="the login failure")
    status = request(service.home, "status")["service"]["qbittorrent"]
    assert status["state"] == "login_failed"
    assert "wrong username or password" in status["error"] and "not-the-password" not in status["error"]
    # a storm would show within a few poll intervals (0.2 s); the service waits for the retry time
    time.sleep(2)
    assert service.sync.syncs == 0 and service.qbt.login_failures == 1
    def failures():
        return qbt.log_file.read_text(errors="replace").count("WebAPI login failure") - failures_before

    wait_until(failures, 30, what="qBittorrent to log the failed login")
    assert failures() == 1
    assert qbt.client.app_version()  # the address is not banned
    out = seedward("status", home=service.home.root, check=True).stdout
    assert "login_failed" in out and "wrong username or password" in out


def test_unreachable_qbittorrent_backs_off_and_job_failures_are_recorded(tmp_path):
    from companion.errors import BadInput, Locked
    from companion.home import Home
    from companion.demo.private_qbt import free_port
    from companion.service import Service

    class Gone:
        url, username, password = f"http://127.0.0.1:{free_port()}", "nobody", "x"

    service = Service(Home(tmp_path / "home"), service_settings(Gone)).start()
    try:
        # the state is set a moment before the backoff counts the failure: wait for both
        wait_until(lambda: service.sync.state == "unreachable" and service.sync.backoff.failures >= 1, 30,
                   what="the unreachable state, backing off")

        def refuse(svc, job):
            raise BadInput("payload", "refused on purpose")

        def crash(svc, job):
            raise RuntimeError("boom")

        done = []
        service.register_job("refuse", refuse)
        service.register_job("crash", crash)
        service.register_job("fine", lambda svc, job: done.append(job.payload["n"]))
        a = service.enqueue("refuse", None)
        b = service.enqueue("crash", None)
        c = service.enqueue("fine", None, n=3)
        wait_until(lambda: done == [3] and not service.catalog.pending_jobs(), 30, what="the jobs")
        rows = {r["id"]: r for r in service.catalog.query("SELECT * FROM queue")}
        assert rows[a]["state"] == "failed" and rows[a]["error"] == "payload: refused on purpose"
        assert rows[b]["state"] == "failed" and "internal error: RuntimeError" in rows[b]["error"]
        assert rows[c]["state"] == "done"
        failed = [e for e in service.catalog.events() if e["kind"] == "job_failed"]
        assert len(failed) == 2 and all(e["level"] == "error" for e in failed)
        status = request(service.home, "status")["service"]
        assert status["qbittorrent"]["state"] == "unreachable" and status["queue"] == {"queued": 0, "running": 0}
        # one service per state home
        with pytest.raises(Locked, match="running seedward service"):
            Service(Home(tmp_path / "home"), service_settings(Gone)).start()
        assert request(service.home, "ping")["pid"] == os.getpid()
    finally:
        service.stop()


def test_demo_starts_qbittorrent_and_protects_every_sample(tmp_path):
    out = seedward("demo", "--workdir", tmp_path, home=tmp_path / "unused-home")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "every torrent verified" in out.stdout
    for name in ("Sample Album", "Field Recordings", "Short Film"):
        assert f"  {name}: seedward:protected" in out.stdout


def test_contrib_example_config_is_valid():
    from pathlib import Path

    from companion.config import load_settings

    example = Path(__file__).parent.parent / "contrib" / "config.example.toml"
    settings = load_settings(example, env={})
    assert settings.protection.policy_for("linux-isos").level == "catalog"
    assert settings.protection.policy_for("", ["no-seedward"]).level == "exclude"
    assert settings.protection.policy_for("").level == "snapshot"


def test_qbt_adapter_against_the_real_qbittorrent(qbt, tmp_path):
    from companion.qbt import Qbt, QbtLoginFailed, QbtNotFound, is_complete
    from companion.torrent import load_torrent

    qbt.remove_all()
    adapter = Qbt(qbt.url, qbt.username, qbt.password)
    assert adapter.connect().startswith("v")
    content = write_payload(tmp_path / "data" / "ad", {"a.bin": 50_000, "b.bin": 7_000})
    torrent = make_torrent(content, kind="hybrid")
    meta = load_torrent(torrent)
    adapter.add_torrent(meta.raw, tmp_path / "data", tags=["mine"], stopped=True)
    t = wait_until(lambda: adapter.torrent(meta.id), 30, what="the added torrent")
    # 4.5 says pausedDL; the adapter says stoppedDL, as 5.x does
    wait_until(lambda: adapter.torrent(meta.id)["state"].startswith("stopped"), 30, what="a stopped torrent")
    adapter.start(meta.id)
    wait_until(lambda: is_complete(adapter.torrent(meta.id)), 30, what="the started torrent")
    assert t["tags"] == "mine"
    assert load_torrent(adapter.export(meta.id)).id == meta.id
    assert [f["name"] for f in adapter.files(meta.id)] == ["ad/a.bin", "ad/b.bin"]
    adapter.stop(meta.id)
    wait_until(lambda: adapter.torrent(meta.id)["state"] == "stoppedUP", 30, what="the stopped torrent")
    adapter.start(meta.id)
    adapter.recheck(meta.id)
    wait_until(lambda: is_complete(adapter.torrent(meta.id)), 30, what="the rechecked torrent")
    with pytest.raises(QbtNotFound):
        adapter.files("0" * 40)
    assert adapter.torrent("0" * 40) is None

    wrong = Qbt(qbt.url, qbt.username, "wrong")
    with pytest.raises(QbtLoginFailed, match="wrong username or password"):
        wrong.connect()
    with pytest.raises(QbtLoginFailed, match="will not try this password again"):
        wrong.torrents()  # the gate: no second login attempt
    assert wrong.login_failures == 1
    qbt.remove_all()


def test_a_partly_downloaded_torrent_protects_the_files_it_seeds(qbt, make_service, tmp_path):
    # A seeder unticks a file (an extras folder, a sample): qBittorrent never downloads it, so it
    # is neither verified nor snapshotted, and its absence is no damage.
    from companion.catalog import snapshots as snapshot_rows
    from companion.cli.verify_cmd import verify_full
    from companion.drift.detect import detect_drift
    from companion.store.job import register as register_snapshots

    service = make_service()
    register_snapshots(service)
    content = write_payload(tmp_path / "data" / "pack", {"e01.mkv": 70_000, "e02.mkv": 50_000,
                                                          "extras/sample.mkv": 30_000})
    torrent = make_torrent(content, kind="hybrid")  # pad files: no piece spans two files
    h = qbt.add_torrent(torrent, tmp_path / "data", skip_checking=False, wait=False, is_paused=True)
    names = wait_until(lambda: qbt.client.torrents_info(torrent_hashes=h) and qbt.client.torrents_files(torrent_hash=h),
                       30, what="the file list")
    extra = next(f["index"] for f in names if f["name"].endswith("sample.mkv"))
    qbt.client.torrents_file_priority(torrent_hash=h, file_ids=[extra], priority=0)
    (content / "extras" / "sample.mkv").unlink()
    qbt.client.torrents_recheck(torrent_hashes=h)
    qbt.client.torrents_resume(torrent_hashes=h)
    qbt.wait_complete(h)

    wait_states(service, [h])
    assert sorted(f["path"] for f in service.catalog.get_files(h)) == ["pack/e01.mkv", "pack/e02.mkv"]
    assert "2 of 3 files" in [e for e in service.catalog.events(h) if e["kind"] == "protected"][-1]["message"]
    snaps = wait_until(lambda: snapshot_rows.list_snapshots(service.catalog, h), 60, what="a snapshot")
    assert sorted(r["path"] for r in snapshot_rows.snapshot_files(service.catalog, snaps[-1]["id"])) == \
        ["pack/e01.mkv", "pack/e02.mkv"]
    assert detect_drift(service.catalog, h).ok
    assert verify_full(service.catalog, h)["ok"]
    flip_byte(content / "e02.mkv", 100)
    found = detect_drift(service.catalog, h)
    assert [d.entry.path for d in found.damages] == ["pack/e02.mkv"]
