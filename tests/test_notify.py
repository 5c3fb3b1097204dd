"""Notifications through the real Apprise library to a real loopback HTTP receiver (json://): the
event mapping, per-event filter, rate limits, held summaries, the daily digest, qBittorrent down
and back, a real drift healed by the service, and that no URL secret ever reaches a log line, an
event, the status object or the CLI's output."""

import base64
import json
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.config import NOTIFY_EVENTS, Settings, load_settings, split_urls
from companion.errors import ConfigError
from companion.home import Home
from companion.notify import (Limiter, Notifier, digest_due, load_targets, next_digest, notice_of, register,
                              secret_parts, shown_url)
from companion.service import Service

from .helpers import flip_byte, seedward, wait_until
from .webhook import Receiver

PASSWORD = "Sup3rSecretPass"
TOKEN = "tok3nABCDEF123456"


@pytest.fixture
def hook():
    r = Receiver()
    yield r
    r.close()


def secret_url(hook: Receiver) -> str:
    return hook.url(f"/hook/{TOKEN}", auth=f"seeder:{PASSWORD}")


def assert_no_secret(*texts) -> None:
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text, text


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_service(tmp_path: Path, **notify) -> Service:
    """A real Service (bus, catalog) whose qBittorrent is a closed loopback port; not started."""
    s = Settings()
    s.qbittorrent.url = f"http://127.0.0.1:{closed_port()}"
    s.qbittorrent.poll_seconds = 0.2
    s.qbittorrent.backoff_max_seconds = 1.0
    for key, value in notify.items():
        setattr(s.notify, key, value)
    return Service(Home(tmp_path / "home"), s)


class Clock:
    """Monotonic and wall clocks the test moves (the limits are over hours and days)."""

    def __init__(self, wall: datetime):
        self.mono = 1000.0
        self.wall = wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


def notifier_for(service, clock: Clock | None = None) -> Notifier:
    targets, errors = load_targets(service.settings.notify)
    kwargs = {"clock": lambda: clock.wall, "monotonic": lambda: clock.mono} if clock else {}
    n = Notifier(service, service.settings.notify, targets, errors, **kwargs)
    for kind in ("drift", "damaged", "healed", "heal_failed", "alert", "drill_failed", "baseline_bad", "state",
                 "job_failed", "qbt_unreachable", "qbt_connected", "archive_failed"):
        service.on(kind, n.listen)
    n.start()
    return n


def wake_and_settle(n: Notifier) -> None:
    """The sender has taken what was emitted and looked at its holds and the digest again."""
    assert n.settle(30)


# pure parts


def test_service_events_map_to_the_ten_notification_events():
    samples = {
        "damaged": [{"event": "drift"}, {"event": "damaged"}],
        "healed": [{"event": "healed"}],
        "heal_failed": [{"event": "heal_failed"}, {"event": "alert"}],
        "unreachable": [{"event": "unreachable"}, {"event": "state", "state": "unreachable"}],
        "drill_failed": [{"event": "drill_failed"}, {"event": "job_failed", "job_kind": "drill"},
                         {"event": "drills_failed"}],
        "archive_failed": [{"event": "archive_failed"}],
        "qbittorrent_down": [{"event": "qbt_unreachable"}, {"event": "qbt_login_failed"}],
        "baseline_bad": [{"event": "baseline_bad"}],
        "service_stuck": [{"event": "service_stuck"}],
        "store_unreachable": [{"event": "store_unreachable"}],
    }
    assert set(samples) == set(NOTIFY_EVENTS)
    for notice, events in samples.items():
        for event in events:
            assert notice_of(event) == notice, event
    for quiet in ({"event": "protected"}, {"event": "state", "state": "damaged"}, {"event": "snapshot"},
                  {"event": "job_failed", "job_kind": "protect"}, {"event": "qbt_connected"},
                  {"event": "service_answering"},
                  {"event": "job_failed", "job_kind": "archive_daily"}):  # retried: archive_failed says the last
        assert notice_of(quiet) is None


def test_limiter_repeats_and_hourly_cap():
    lim = Limiter(repeat=600, per_hour=3)
    assert lim.admit(("damaged", "a"), 0) == "send"
    assert lim.admit(("damaged", "a"), 10) == "repeat"
    assert lim.admit(("damaged", "a"), 599) == "repeat"
    assert lim.admit(("healed", "a"), 20) == "send"
    assert lim.admit(("damaged", "b"), 30) == "send"
    assert lim.admit(("damaged", "c"), 40) == "full"  # 3 in the last hour
    assert lim.wait(40) == pytest.approx(3600 - 40)
    assert lim.admit(("damaged", "a"), 700) == "full"  # no longer a repeat, but the hour is full
    assert lim.repeated(("damaged", "a")) == 2 and lim.repeated(("damaged", "a")) == 0
    assert lim.room(3600) and lim.admit(("damaged", "c"), 3600) == "send"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 50), st.integers(0, 3)), max_size=200),
       st.floats(0, 1800), st.integers(1, 10))
def test_limiter_invariants(steps, repeat, per_hour):
    """Whatever arrives: never more than per_hour sends in any hour, never the same key twice
    within `repeat`, and every event is sent, counted as a repeat, or reported full."""
    lim = Limiter(repeat, per_hour)
    now, sent, counts = 0.0, [], {"send": 0, "repeat": 0, "full": 0}
    for gap, key in steps:
        now += gap
        verdict = lim.admit(key, now)
        counts[verdict] += 1
        if verdict == "send":
            sent.append((now, key))
    assert sum(counts.values()) == len(steps)
    for i, (t, _k) in enumerate(sent):
        assert sum(1 for u, _ in sent[i:] if u - t < 3600) <= per_hour
    last = {}
    for t, k in sent:
        assert k not in last or t - last[k] >= repeat
        last[k] = t


def test_digest_time_is_local_and_once_a_day():
    at = (8, 0)
    morning = datetime(2026, 3, 1, 7, 59)
    assert not digest_due(morning, at, None)
    assert next_digest(morning, at, None) == datetime(2026, 3, 1, 8, 0)
    assert digest_due(datetime(2026, 3, 1, 8, 0), at, "2026-02-28")
    assert not digest_due(datetime(2026, 3, 1, 9, 0), at, "2026-03-01")
    assert next_digest(datetime(2026, 3, 1, 9, 0), at, "2026-03-01") == datetime(2026, 3, 2, 8, 0)
    late = datetime(2026, 3, 1, 23, 0)  # the service was down at 08:00: sent when it is back
    assert digest_due(late, at, "2026-02-28") and next_digest(late, at, "2026-02-28") == late


def test_urls_split_and_show_nothing_secret():
    assert split_urls("json://a/x, mailto://u:p@h?to=a@b,c@d\n discord://1/2") == [
        "json://a/x", "mailto://u:p@h?to=a@b,c@d", "discord://1/2"]
    url = f"jsons://seeder:{PASSWORD}@hooks.example.net/x/{TOKEN}?-Authorization=Bearer%20{TOKEN}"
    shown = shown_url(url, "JSON")
    assert shown == "JSON jsons://***@hooks.example.net/***"
    assert_no_secret(shown, shown_url(f"ntfy://{TOKEN}"), shown_url(f"discord://123456789/{TOKEN}"))
    assert {PASSWORD, TOKEN} <= secret_parts(url)


def test_config_errors_name_the_key(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    for text, needle in (("[notify]\nurl = []\n", "unknown key 'url'"),
                         ('[notify]\nevents = ["damaged", "exploded"]\n', "unknown event 'exploded'"),
                         ('[notify]\ndigest = "8am"\n', "notify.digest"),
                         ('[metrics]\nlisten = "9477"\n', "metrics.listen"),
                         ("[quarantine]\nkeep = 3\n", "unknown key 'keep'")):
        (home / "config.toml").write_text(text)
        with pytest.raises(ConfigError, match=needle):
            load_settings(home / "config.toml")
        r = seedward("quarantine", "list", home=home)
        assert r.returncode == 2 and needle.split()[0] in r.stderr, r.stderr
    env = {"SEEDWARD_NOTIFY_URLS": "json://127.0.0.1:1/a json://127.0.0.1:2/b"}
    (home / "config.toml").write_text('[notify]\nurls = ["json://127.0.0.1:3/c"]\n')
    assert load_settings(home / "config.toml", env).notify.urls == ["json://127.0.0.1:1/a", "json://127.0.0.1:2/b"]


# the CLI


def test_notify_test_cli_delivers_through_the_environment_url(tmp_path, hook):
    home = tmp_path / "home"
    r = seedward("notify", "test", "--json", home=home, env={"SEEDWARD_NOTIFY_URLS": secret_url(hook)})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["delivered"] == [f"JSON json://***@127.0.0.1:{hook.port}/***"] and not out["failed"]
    post = hook.posts[-1]
    assert post["path"] == f"/hook/{TOKEN}" and post["body"]["title"] == "seedward: test notification"
    assert base64.b64decode(post["headers"]["Authorization"].split()[1]).decode() == f"seeder:{PASSWORD}"
    assert_no_secret(r.stdout, r.stderr)

    hook.fail_next(1)
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(f'[notify]\nurls = ["{secret_url(hook)}", "nosuchscheme://{TOKEN}"]\n')
    r = seedward("notify", "test", home=home)
    assert r.returncode == 2
    assert "FAILED" in r.stdout and "notify.urls[1]: Apprise cannot load this nosuchscheme:// URL" in r.stdout
    assert_no_secret(r.stdout, r.stderr)


# the notifier in a real service


def test_qbittorrent_down_then_back_is_notified_and_secrets_stay_out_of_logs(tmp_path, hook, caplog):
    caplog.set_level(logging.DEBUG)  # Apprise's and urllib3's debug lines name the URL and its path
    service = offline_service(tmp_path, urls=[secret_url(hook)])
    register(service)
    service.start()
    try:
        wait_until(lambda: any(t == "seedward: qBittorrent down" for t in hook.titles()), 30, 0.05,
                   "the qBittorrent-down notification")
        body = hook.posts[-1]["body"]
        assert body["type"] == "failure" and "127.0.0.1" in body["message"]
        # a delivery that keeps failing: retried, then one warning and one event, both without the secret
        hook.fail_next(3)
        service.emit("baseline_bad", "ab" * 20, "X: payload does not match its torrent")
        wait_until(lambda: any(e["kind"] == "notify_failed" for e in service.catalog.events(None, 50)), 30, 0.05,
                   "the failed delivery to be recorded")
        status = json.dumps(service.status()["service"]["notify"])
        assert f"127.0.0.1:{hook.port}/***" in status
    finally:
        service.stop()
    events = [dict(e) for e in Service(Home(tmp_path / "home"), service.settings).catalog.events(None, 500)]
    assert_no_secret(json.dumps(events), status, *(r.getMessage() for r in caplog.records))
    assert any("JSON POST URL" in r.getMessage() for r in caplog.records)  # Apprise did log it: masked


def test_rate_limits_hold_repeats_and_send_one_summary(tmp_path, hook):
    service = offline_service(tmp_path, urls=[hook.url()], repeat_minutes=30, max_per_hour=3)
    clock = Clock(datetime(2026, 3, 1, 12, 0))
    n = notifier_for(service, clock)
    try:
        tid = "cd" * 20
        for _ in range(4):
            service.emit("heal_failed", tid, "T: heal refused: chunk x is corrupt")
        wait_until(lambda: len(hook.posts) == 1 and n.stats.repeats == 3, 10, 0.02,
                   "the first heal_failed sent, its 3 repeats held")  # all 4 taken before the clock moves
        clock.advance(31 * 60)
        service.emit("heal_failed", tid, "T: heal refused again")
        wait_until(lambda: len(hook.posts) == 2, 10, 0.02, "the heal_failed after the repeat window")
        assert "(and 3 more times within 30 min, not sent)" in hook.posts[1]["body"]["message"]
        for i in range(3):  # the hour now holds 2; one more is sent, two are held
            service.emit("damaged", f"{i:02d}" * 20, f"payload {i}: drift found")
        wait_until(lambda: len(hook.posts) == 3 and n.stats.held == 2, 10, 0.02, "one sent, two held")
        clock.advance(3600)
        wake_and_settle(n)
        wait_until(lambda: len(hook.posts) == 4, 10, 0.02, "the summary")
        summary = hook.posts[3]["body"]
        assert summary["title"] == "seedward: 2 notifications held back (2 damaged)"
        assert "payload 1: drift found" in summary["message"] and "payload 2: drift found" in summary["message"]
    finally:
        n.stop()
        service.catalog.close()


def test_per_event_filter_and_daily_digest(tmp_path, hook):
    service = offline_service(tmp_path, urls=[hook.url()], events=["damaged", "healed", "heal_failed"],
                              digest="08:00", immediate=["heal_failed"])
    clock = Clock(datetime(2026, 3, 1, 7, 0))
    n = notifier_for(service, clock)
    try:
        service.emit("drift", "aa" * 20, "A: drift found (track.flac: damaged)")
        service.emit("healed", "aa" * 20, "A: healed 1 pieces")
        service.emit("drill_failed", "bb" * 20, "B: drill failed")  # not in events: never notified
        service.emit("heal_failed", "cc" * 20, "C: heal refused")  # immediate
        wait_until(lambda: len(hook.posts) == 1, 10, 0.02, "the immediate heal_failed")
        assert hook.titles() == ["seedward: heal failed: " + "c" * 12]
        clock.advance(3600 + 60)  # 08:01
        wake_and_settle(n)
        wait_until(lambda: len(hook.posts) == 2, 10, 0.02, "the digest")
        digest = hook.posts[1]["body"]
        assert digest["title"] == "seedward daily digest 2026-03-01: 1 damaged, 1 heal failed, 1 healed"
        for line in ("A: drift found", "A: healed 1 pieces", "C: heal refused"):
            assert line in digest["message"]
        assert "B: drill failed" not in digest["message"]
    finally:
        n.stop()
    # a restart the same day sends no second digest; the next day's covers only what came after
    n = notifier_for(service, clock)
    try:
        service.emit("healed", "dd" * 20, "D: healed")
        clock.advance(3600)
        wake_and_settle(n)
        assert len(hook.posts) == 2
        clock.advance(24 * 3600)
        wake_and_settle(n)
        wait_until(lambda: len(hook.posts) == 3, 10, 0.02, "the next day's digest")
        assert hook.posts[2]["body"]["title"] == "seedward daily digest 2026-03-02: 1 healed"
        assert "D: healed" in hook.posts[2]["body"]["message"] and "A: healed" not in hook.posts[2]["body"]["message"]
    finally:
        n.stop()
        service.catalog.close()


@pytest.mark.qbt
@pytest.mark.slow
def test_a_real_drift_is_notified_damaged_then_healed(qbt, tmp_path, hook):
    from companion.drift.service import install
    from companion.store.job import register as register_snapshots

    from .qbt import seed_sample, service_settings, wait_states

    qbt.remove_all()
    tid, _torrent = seed_sample(qbt, tmp_path / "dl", "Notified Album", {"01.flac": 60_000, "cover.jpg": 9_000})
    settings = service_settings(qbt)
    settings.scrub.interval_hours = 0
    settings.notify.urls = [hook.url()]
    service = Service(Home(tmp_path / "home"), settings)
    register_snapshots(service)
    drift = install(service)
    register(service)
    service.start()
    try:
        wait_states(service, [tid])
        wait_until(lambda: service.catalog.query("SELECT 1 FROM snapshots WHERE torrent_id = ?", (tid,))
                   and tid in drift.monitor.watch.tracked(), 60, 0.1, "snapshot and watch")
        flip_byte(tmp_path / "dl" / "Notified Album" / "01.flac", 30_000)
        wait_until(lambda: "seedward: healed: Notified Album" in hook.titles(), 60, 0.1, "the healed notification")
        titles = hook.titles()
        assert titles.index("seedward: damaged: Notified Album") < titles.index("seedward: healed: Notified Album")
        healed = hook.posts[titles.index("seedward: healed: Notified Album")]["body"]
        assert healed["type"] == "success" and tid in healed["message"] and "healed 1 pieces" in healed["message"]
        # qBittorrent goes away and comes back: one message each way
        qbt.stop()
        wait_until(lambda: "seedward: qBittorrent down" in hook.titles(), 30, 0.05, "the qBittorrent-down message")
        qbt.start()
        wait_until(lambda: "seedward: qBittorrent answers again" in hook.titles(), 60, 0.05, "the recovery message")
        assert hook.titles().count("seedward: qBittorrent down") == 1
    finally:
        service.stop()
        qbt.remove_all()


def test_no_urls_no_notifier(tmp_path):
    service = offline_service(tmp_path)
    register(service)
    assert not service.components
    service.catalog.close()
    assert not os.environ.get("SEEDWARD_NOTIFY_URLS")


@pytest.mark.slow
def test_seedward_serve_installs_notifications_and_metrics(tmp_path, hook):
    """The real `seedward serve` (features loaded as in production), qBittorrent not there: the
    down notification arrives, the endpoint answers, the status names both without secrets."""
    import signal
    import subprocess
    import sys
    import urllib.request

    from companion.control import request
    from companion.errors import Error

    home = tmp_path / "home"
    home.mkdir()
    port = closed_port()
    (home / "config.toml").write_text(
        f'[qbittorrent]\nurl = "http://127.0.0.1:{closed_port()}"\nbackoff_max_seconds = 1.0\n'
        f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    exe = str(Path(sys.executable).parent / "seedward")
    env = dict(os.environ, SEEDWARD_HOME=str(home), SEEDWARD_NOTIFY_URLS=secret_url(hook))
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([exe, "serve"], env=env, stdout=log, stderr=log)
    try:
        wait_until(lambda: "seedward: qBittorrent down" in hook.titles(), 60, 0.1, "the down notification")

        def scrape():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    return r.read().decode()
            except OSError:
                return None

        text = wait_until(scrape, 30, 0.1, "the metrics endpoint")
        assert "seedward_qbittorrent_up 0.0" in text

        def status():
            try:
                return request(Home(home), "status", timeout=10)
            except Error:
                return None

        service = wait_until(status, 30, 0.1, "the control socket")["service"]
        assert service["metrics"]["listen"] == f"127.0.0.1:{port}"
        assert service["notify"]["targets"] == [f"JSON json://***@127.0.0.1:{hook.port}/***"]
        assert_no_secret(json.dumps(service))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert_no_secret((tmp_path / "serve.log").read_text())
