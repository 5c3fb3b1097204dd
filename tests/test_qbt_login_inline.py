"""An inline WebUI password ([qbittorrent] password in config.toml, no password file) changed under a
real `seedward serve`: after the one refusal, the user writes the new password into config.toml and
sends SIGHUP; the service reads it then and reconnects with it. Before, SIGHUP tried the password
read at start again: a second failure of the two per ban window, and no reconnect until a restart."""

import os
import signal
import subprocess

import pytest

from companion.demo.private_qbt import QbtProcess
from companion.home import Home
from tests.helpers import stop_process, wait_until
from tests.test_qbt_login import SEEDWARD, change_webui_password, failed_logins, qbt_state

pytestmark = [pytest.mark.slow, pytest.mark.qbt]


def config(qbt: QbtProcess, password: str) -> str:
    return (f'[qbittorrent]\nurl = "{qbt.url}"\nusername = "{qbt.username}"\npassword = "{password}"\n'
            "poll_seconds = 0.2\nbackoff_max_seconds = 1.0\n")


def test_sighup_rereads_an_inline_password(tmp_path):
    qbt = QbtProcess(tmp_path / "qbt", password="first-password").start()
    home = Home(tmp_path / "home").ensure()
    home.config.write_text(config(qbt, "first-password"))
    home.config.chmod(0o600)
    log = open(home.root / "serve.log", "ab")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QBITTORRENTAPI_")}
    proc = subprocess.Popen([SEEDWARD, "serve"], env=dict(env, SEEDWARD_HOME=str(home.root)), stdout=log, stderr=log)
    log.close()
    try:
        wait_until(lambda: (q := qbt_state(home)) and q["state"] == "connected", 60, what="the service to connect")
        since = change_webui_password(qbt, "second-password")
        wait_until(lambda: (q := qbt_state(home)) and q["state"] == "login_failed", 60, what="the refused login")
        wait_until(lambda: failed_logins(qbt, since) >= 1, 30, what="qBittorrent to log the refusal")
        home.config.write_text(config(qbt, "second-password"))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: (q := qbt_state(home)) and q["state"] == "connected", 60, what="the reconnect")
        assert failed_logins(qbt, since) == 1  # the SIGHUP's try was the new password
        home.config.write_text("[qbittorrent]\nnot_a_key = 1\n")  # a broken config: SIGHUP keeps the service up
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "config not re-read" in (home.root / "serve.log").read_text(), 30, what="the warning")
        assert proc.poll() is None and qbt_state(home)["state"] == "connected"
    finally:
        stop_process(proc)
        qbt.stop()
