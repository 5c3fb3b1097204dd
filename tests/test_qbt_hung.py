"""A hung qBittorrent (SIGSTOP: the kernel still accepts its connections, nothing answers) costs a
command one bounded attempt: one line, exit 4 (EXIT_QBT), and exactly one connection made.

The connections are counted in the frozen qBittorrent's accept queue (`ss`: a LISTEN socket's
Recv-Q is how many connections wait to be accepted), so the test proves "no retry" by a count, not
by a clock. Before, each command made several attempts per call (qbittorrent-api retries at two
levels), 30 s each: `qbt backup` took 3 min 21 s."""

import shutil
import signal
import subprocess

import pytest

from companion.demo.private_qbt import QbtProcess
from tests.helpers import seedward

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")]

VERBS = (
    ("qbt", "backup"),
    ("qbt", "restore", "--dry-run"),  # (login, install-hook: the same client as these two)
    ("continuity",),  # through instances.connect, as start/stop/restore/publish/fleet adopt
)


@pytest.fixture
def frozen(tmp_path):
    """A private qbittorrent-nox (never the shared one: it is frozen here), and a home using it."""
    proc = QbtProcess(tmp_path / "qbt")
    proc.start()
    home = tmp_path / "home"
    home.mkdir()
    secret = tmp_path / "webui-password"
    secret.write_text(proc.password + "\n")
    secret.chmod(0o600)
    (home / "config.toml").write_text(f'[qbittorrent]\nurl = "{proc.url}"\nusername = "{proc.username}"\n'
                                      f'password_file = "{secret}"\n')
    r = seedward("qbt", "backup", home=home)  # answering: the commands work (and restore has a backup)
    assert r.returncode == 0, r.stderr
    proc.proc.send_signal(signal.SIGSTOP)
    try:
        yield proc, home
    finally:
        proc.proc.send_signal(signal.SIGCONT)
        proc.stop()


def waiting_connections(port: int) -> int:
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.strip())


def test_every_command_fails_after_one_attempt_when_qbittorrent_hangs(frozen):
    proc, home = frozen
    for verb in VERBS:
        before = waiting_connections(proc.port)
        r = seedward(*verb, home=home)
        assert r.returncode == 4, (verb, r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "unreachable: timed out" in lines[0], (verb, r.stderr)
        assert proc.url in lines[0]
        assert waiting_connections(proc.port) - before == 1, verb  # one attempt, no retry
