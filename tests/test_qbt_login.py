"""No self-ban: a real `seedward serve` against a private qbittorrent-nox whose WebUI password changes
under it. The service stops trying the refused password, the right one keeps working for every other
local client, and fixing the password file (or SIGHUP / `seedward qbt login`) brings it back, with at
most two failed logins in qBittorrent's ban window. Plus the gate's decisions as a property test."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import qbittorrentapi

from companion.control import request
from companion.demo.private_qbt import QbtProcess
from companion.errors import Error
from companion.home import Home
from companion.qbtlogin import MAX_FAILURES, RECHECK_SECONDS, LoginGate, PasswordSource, decide
from tests.helpers import seedward, stop_process, wait_until

SEEDWARD = shutil.which("seedward") or str(Path(sys.executable).parent / "seedward")


def failed_logins(qbt: QbtProcess, since: int) -> int:
    """qBittorrent's own count of refused logins in its log after byte offset `since`."""
    text = qbt.log_file.read_bytes()[since:].decode(errors="replace")
    return text.count("WebAPI login failure")


def log_size(qbt: QbtProcess) -> int:
    return qbt.log_file.stat().st_size if qbt.log_file.exists() else 0


def qbt_state(home: Home) -> dict | None:
    try:
        return request(home, "status", timeout=10)["service"]["qbittorrent"]
    except Error:
        return None


@pytest.fixture
def served(tmp_path, request):
    """A private qbittorrent-nox (password in a 0600 file) and `seedward serve` following it.
    Parameter (indirect): qBittorrent's ban duration in seconds, set before the service first logs in."""
    qbt = QbtProcess(tmp_path / "qbt", password="first-password").start()
    if getattr(request, "param", None):
        qbt.client.app_set_preferences({"web_ui_ban_duration": request.param})
    password_file = tmp_path / "secrets" / "webui-password"
    password_file.parent.mkdir()
    password_file.write_text("first-password\n")
    password_file.chmod(0o600)
    home = Home(tmp_path / "home").ensure()
    home.config.write_text(f'[qbittorrent]\nurl = "{qbt.url}"\nusername = "{qbt.username}"\n'
                           f'password_file = "{password_file}"\npoll_seconds = 0.2\nbackoff_max_seconds = 1.0\n')
    log = open(home.root / "serve.log", "ab")
    proc = subprocess.Popen([SEEDWARD, "serve"], env=dict(os.environ, SEEDWARD_HOME=str(home.root)),
                            stdout=log, stderr=log)
    log.close()
    try:
        wait_until(lambda: (q := qbt_state(home)) and q["state"] == "connected", 60, what="the service to connect")
        yield {"qbt": qbt, "home": home, "proc": proc, "password_file": password_file}
    finally:
        stop_process(proc)
        qbt.stop()


def change_webui_password(qbt: QbtProcess, new: str) -> int:
    """The user changes the WebUI password (qBittorrent restarts, so every session must log in again).
    Returns the log offset from which new failures count (taken first: the service may fail at once)."""
    since = log_size(qbt)
    qbt.client.app_set_preferences({"web_ui_password": new})
    qbt.password = new
    qbt.restart()
    return since


def other_client_logs_in(qbt: QbtProcess) -> str:
    client = qbittorrentapi.Client(host=qbt.url, username=qbt.username, password=qbt.password,
                                   REQUESTS_ARGS={"timeout": (5, 30)})
    client.auth_log_in()  # raises when 127.0.0.1 is banned, even with the right password
    return str(client.app_version())


def tui_health(status: dict) -> str:
    """The TUI's health line for this status object (the TUI speaks only to the service: a fake one
    answering with the real service's status)."""
    import asyncio
    import tempfile

    from tests.tui_fake_service import FakeService
    from tui.app import SeedwardApp

    root = Path(tempfile.mkdtemp(prefix="sw-login-", dir="/tmp"))  # a short Unix socket path
    service = FakeService(Home(root).socket, status=status).start()

    async def run():
        app = SeedwardApp(Home(root), retry_seconds=0.2, debounce_seconds=0.05)
        async with app.run_test(size=(160, 30)) as pilot:
            for _ in range(400):
                health = str(app.screen.query_one("#health").render())
                if "qBittorrent" in health:
                    return health
                await pilot.pause(0.025)
        raise AssertionError("the TUI never showed qBittorrent's state")

    try:
        return asyncio.run(run())
    finally:
        service.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.qbt
def test_a_changed_password_never_gets_the_address_banned(served):
    qbt, home = served["qbt"], served["home"]
    since = change_webui_password(qbt, "second-password")
    wait_until(lambda: (q := qbt_state(home)) and q["state"] == "login_failed", 60, what="the refused login")
    # Five retry intervals (a storm, the old one-try-per-interval included, would reach qBittorrent's 5).
    time.sleep(5 * max(RECHECK_SECONDS, 1.0) + 1)
    wait_until(lambda: failed_logins(qbt, since) >= 1, 30, what="qBittorrent to log the refusal")
    assert failed_logins(qbt, since) == 1
    assert other_client_logs_in(qbt).startswith("v")  # the right password works: not banned
    # status and the TUI (the same status object) say why and what seedward waits for.
    state = qbt_state(home)
    assert state["state"] == "login_failed" and "second-password" not in json.dumps(state)
    assert "will not try this password again" in state["error"] and str(served["password_file"]) in state["error"]
    text = seedward("status", home=home.root).stdout
    assert "login_failed" in text and "will not try this password again" in text
    health = tui_health(request(home, "status"))
    assert "refused our login" in health and "will not try this password again" in health
    assert str(served["password_file"]) in health
    # Fixing the password file is enough: the service notices and reconnects by itself.
    served["password_file"].write_text("second-password\n")
    wait_until(lambda: (q := qbt_state(home)) and q["state"] == "connected", 60, what="the reconnect")
    assert failed_logins(qbt, since) == 1
    record = json.loads((home.root / "qbt-login.json").read_text()) if (home.root / "qbt-login.json").exists() else {}
    assert all(not r["failures"] and r["refused"] is None for r in record.values())


@pytest.mark.slow
@pytest.mark.qbt
@pytest.mark.parametrize("served", [30], indirect=True)  # a short ban window, qBittorrent's own, learned at login
def test_sighup_and_qbt_login_retry_but_never_past_two_failures(served):
    qbt, home, proc = served["qbt"], served["home"], served["proc"]
    since = change_webui_password(qbt, "third-password")
    wait_until(lambda: failed_logins(qbt, since) == 1, 60, what="the first refusal")
    proc.send_signal(signal.SIGHUP)  # try the (unchanged, wrong) password once more
    wait_until(lambda: failed_logins(qbt, since) == 2, 60, what="the SIGHUP retry")
    # The budget is spent: `seedward qbt login` and another SIGHUP make no attempt at all.
    login = seedward("qbt", "login", home=home.root)
    assert failed_logins(qbt, since) == MAX_FAILURES, login.stderr
    assert login.returncode == 4 and "2 failed logins" in login.stderr and "third-password" not in login.stderr
    assert login.stderr.count("\n") == 1
    proc.send_signal(signal.SIGHUP)
    time.sleep(3 * RECHECK_SECONDS)
    assert failed_logins(qbt, since) == MAX_FAILURES
    assert other_client_logs_in(qbt).startswith("v")
    # The right password in the file: the service reconnects once the ban window allows a try.
    served["password_file"].write_text("third-password\n")
    wait_until(lambda: (q := qbt_state(home)) and q["state"] == "connected", 90, what="the reconnect")
    assert failed_logins(qbt, since) == MAX_FAILURES
    # `seedward qbt login` with the right password: logged in, record clean.
    ok = seedward("qbt", "login", "--json", home=home.root)
    assert ok.returncode == 0 and json.loads(ok.stdout)["logged_in"]


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def test_the_gate_never_spends_more_than_two_failures_per_window(tmp_path):
    """Random days of password changes, refusals, SIGHUPs and time passing, against the invariants:
    never more than MAX_FAILURES refusals in any ban window, never a try of the identity last refused
    without a SIGHUP in between. Two gates (service and CLI) share one record."""
    rnd = random.Random(13)
    window = 600.0
    for trial in range(30):
        folder = tmp_path / str(trial)
        folder.mkdir()
        password = folder / "pw"
        password.write_text("a")
        clock = Clock()
        record = folder / "qbt-login.json"
        gates = [LoginGate("u@x", PasswordSource(file=password), record, window, clock) for _ in range(2)]
        refusals, last_refused, reopened_at = [], None, {}
        for _step in range(60):
            clock.now += 0.001  # every step takes some time
            action = rnd.choice(["try", "try", "try", "change", "sighup", "wait", "wait_long"])
            g = rnd.randrange(2)
            gate = gates[g]
            if action == "change":
                password.write_text(rnd.choice("abc") * rnd.randint(1, 3))
                os.utime(password, (clock.now - 10, clock.now - 10))  # settled
            elif action == "sighup":
                gate.reopen()
                reopened_at[g] = clock.now
            elif action == "wait":
                clock.now += rnd.uniform(1, 120)
            elif action == "wait_long":
                clock.now += rnd.uniform(300, 900)
            else:
                state, _why, _wait = gate.check()
                if state != "ok":
                    continue
                identity = PasswordSource(file=password).identity()
                # the refused password again only after a SIGHUP to this gate's process since that refusal
                assert identity != last_refused or reopened_at.get(g, 0) > refusals[-1]
                gate.refused(banned=False)  # the worst case: every attempt is refused
                refusals.append(clock.now)
                last_refused = identity
                assert len([t for t in refusals if t > clock.now - window]) <= MAX_FAILURES
        for t in refusals:
            assert len([u for u in refusals if t - window < u <= t]) <= MAX_FAILURES


def test_decide_states():
    now, window = 10_000.0, 3600.0
    assert decide({}, now, ["a"], window, 5)[0] == "ok"
    assert decide({"refused": ["a"]}, now, ["a"], window, 5)[0] == "waiting_for_password"
    assert decide({"refused": ["a"], "failures": [now - 10]}, now, ["b"], window, 5)[0] == "ok"
    state, _why, wait = decide({"failures": [now - 100, now - 10]}, now, ["b"], window, 5)
    assert state == "budget_spent" and wait == pytest.approx(window - 100)
    assert decide({"failures": [now - 10]}, now, ["b"], window, 2)[0] == "budget_spent"  # qBittorrent bans at 2
    assert decide({"banned_until": now + 5}, now, ["b"], window, 5)[0] == "banned"
