"""Liveness: the service asks itself for its status, over its own control socket, every
`[service] watchdog_seconds`, and so proves what a client would see.

An answer in time: under systemd with `WatchdogSec=` (NOTIFY_SOCKET and WATCHDOG_USEC set) a
`WATCHDOG=1` ping. No answer in time: every thread's stack goes to the log once (a stuck lock shows
which two threads wait for each other), a `service_stuck` event (seeding continuity counts the time
as not watched), and no ping, so systemd restarts the service. `READY=1` is sent once the service
serves; `STOPPING=1` when it stops.

The sd_notify protocol is one datagram on a Unix socket (sd_notify(3)); written here rather than
adding a dependency that needs libsystemd to build.
"""

import logging
import os
import socket
import sys
import threading
import time
import traceback

from ..control import ControlError, request
from ..errors import Error
from ..loops import Loop

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one sd_notify message; False when not run by systemd (or it cannot be reached)."""
    where = os.environ.get("NOTIFY_SOCKET", "")
    if not where:
        return False
    address = "\0" + where[1:] if where.startswith("@") else where
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
        return True
    except OSError as exc:
        log.debug("sd_notify %s: %s", message, exc)
        return False


def systemd_interval() -> float | None:
    """Half of systemd's WatchdogSec for this process, when it set one."""
    usec, pid = os.environ.get("WATCHDOG_USEC", ""), os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def thread_stacks() -> str:
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        out.append(f"thread {names.get(ident, ident)}:\n" + "".join(traceback.format_stack(frame)[-12:]))
    return "\n".join(out)


class Watchdog:
    def __init__(self, service, every: float):
        self.service = service
        self.every = every
        self.loop = Loop("watchdog", self.step, every, first_wait=True, stopping=service.stopping)
        self._probe: threading.Thread | None = None
        self._answered = threading.Event()
        self._asked_at = 0.0
        self.stuck_since: float | None = None

    def start(self) -> None:
        notify("READY=1")
        if self.every > 0:
            self.loop.start()

    def stop(self) -> None:
        notify("STOPPING=1")
        self.loop.stop()

    def _ask(self) -> None:
        try:
            request(self.service.home, "dashboard", timeout=max(300.0, 10 * self.every))
            self._answered.set()
        except (ControlError, Error, OSError) as exc:  # (ServiceNotRunning while it stops)
            log.debug("watchdog probe: %s", exc)

    def step(self) -> float:
        if self._probe is None or not self._probe.is_alive():
            self._answered.clear()
            self._asked_at = time.monotonic()
            self._probe = threading.Thread(target=self._ask, name="watchdog-probe", daemon=True)
            self._probe.start()
        # (a probe still waiting from an earlier step is not asked again: one at a time)
        wait = max(0.0, self._asked_at + self.every / 2 - time.monotonic())
        if self._answered.wait(wait):
            self.answered()
        else:
            self.unanswered(time.monotonic() - self._asked_at)
        return max(0.0, self._asked_at + self.every - time.monotonic())  # one probe every `every`

    def answered(self) -> None:
        notify("WATCHDOG=1")
        if self.stuck_since is not None:
            took = time.monotonic() - self.stuck_since
            self.stuck_since = None
            self.service.emit("service_answering", None, f"seedward service answers its status again after {took:.0f}s",
                              seconds=round(took, 1))

    def unanswered(self, waited: float) -> None:
        if self.stuck_since is not None:
            return  # said once per streak
        self.stuck_since = time.monotonic() - waited
        log.error("the service's own status request got no answer in %.0fs; every thread's stack:\n%s",
                  waited, thread_stacks())
        self.service.emit("service_stuck", None, f"seedward service: its status did not answer within {waited:.0f}s"
                          " (the log has every thread's stack); under systemd's watchdog it is restarted",
                          level="error", seconds=round(waited, 1))


def register(service) -> None:
    every = service.settings.service.watchdog_seconds
    systemd = systemd_interval()
    if systemd is not None:
        every = min(every, systemd) if every > 0 else systemd
    service.add_component(Watchdog(service, max(0.0, every)))  # (every 0: only READY=1 and STOPPING=1)
