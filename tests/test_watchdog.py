"""The service's watchdog (service/watchdog.py) against the real service and a real sd_notify
socket: READY=1, then WATCHDOG=1 while its own status answers; a status that hangs (its lock held
here, as a deadlock would) stops the pings, logs every thread's stack and records `service_stuck`;
answering again resumes the pings and records `service_answering`."""

import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from companion.config import ConfigError, load_settings
from companion.home import Home
from companion.service import watchdog
from tests.qbt import service_settings
from tests.test_control import Gone


class NotifySocket:
    """What systemd listens on: a datagram socket; NOTIFY_SOCKET names it."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)

    def messages(self, seconds: float) -> list[str]:
        """Every message that arrives within `seconds` (a bounded collection, not a timing assertion)."""
        out, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                out.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        return out

    def until(self, message: str, seconds: float = 60.0) -> list[str]:
        seen, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            seen += self.messages(0.2)
            if message in seen:
                return seen
        raise AssertionError(f"no {message} within {seconds:.0f}s (got {seen})")


def events(service, kind: str) -> list:
    return service.catalog.query("SELECT * FROM events WHERE kind = ?", (kind,))


@pytest.fixture
def world(monkeypatch):
    root = Path(tempfile.mkdtemp(prefix="sw-wd-", dir="/tmp"))
    systemd = NotifySocket(str(root / "notify"))
    monkeypatch.setenv("NOTIFY_SOCKET", str(root / "notify"))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    yield root, systemd
    systemd.sock.close()
    shutil.rmtree(root, ignore_errors=True)


def test_a_stuck_status_stops_the_pings_and_says_where(world, caplog):
    from companion.service import Service
    from companion.service.features import install_features
    from tests.webhook import Receiver

    root, systemd = world
    hook = Receiver()  # the seeder's phone: a stuck service is sent, and its recovery
    settings = service_settings(Gone())
    settings.service.watchdog_seconds = 1.0
    settings.notify.urls = [hook.url("/hook")]
    svc = Service(Home(root / "home"), settings)
    install_features(svc)
    svc.start()
    held = False
    try:
        seen = systemd.until("WATCHDOG=1")
        assert seen[0] == "READY=1"
        svc.status_builder._build_lock.acquire()  # every status now waits, as behind a deadlock
        held = True
        deadline = time.monotonic() + 60
        while not events(svc, "service_stuck") and time.monotonic() < deadline:
            systemd.messages(0.2)
        assert events(svc, "service_stuck"), "no service_stuck event"
        assert "WATCHDOG=1" not in systemd.messages(3.0)  # three probes' worth: no ping while stuck
        stacks = [r.getMessage() for r in caplog.records if "every thread's stack:\n" in r.getMessage()]
        assert len(stacks) == 1  # once per streak
        assert "in build" in stacks[0] and "_build_lock" in stacks[0]  # the waiting thread, where it waits
        svc.status_builder._build_lock.release()
        held = False
        systemd.until("WATCHDOG=1")
        deadline = time.monotonic() + 60
        while not events(svc, "service_answering") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(events(svc, "service_answering")) == 1 and len(events(svc, "service_stuck")) == 1
        deadline = time.monotonic() + 60
        while "seedward: seedward answers again" not in hook.titles() and time.monotonic() < deadline:
            time.sleep(0.1)
        titles = hook.titles()
        assert titles.count("seedward: seedward not answering") == 1, titles
        assert titles.index("seedward: seedward not answering") < titles.index("seedward: seedward answers again")
    finally:
        if held:
            svc.status_builder._build_lock.release()
        svc.stop()
        hook.close()
    assert systemd.until("STOPPING=1", 10)


def test_notify_reaches_an_abstract_socket_and_says_when_not_under_systemd(monkeypatch):
    name = f"sw-notify-{os.getpid()}-{threading.get_ident()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert watchdog.notify("READY=1")
        assert sock.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not watchdog.notify("READY=1")
    monkeypatch.setenv("WATCHDOG_USEC", "180000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog.systemd_interval() == 90.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # another process's watchdog
    assert watchdog.systemd_interval() is None


def test_watchdog_seconds_is_checked(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[service]\nwatchdog_seconds = 0.5\n")
    with pytest.raises(ConfigError, match="service.watchdog_seconds"):
        load_settings(path, env={})
    path.write_text("[service]\nwatchdog_seconds = 0\n")
    assert load_settings(path, env={}).service.watchdog_seconds == 0
