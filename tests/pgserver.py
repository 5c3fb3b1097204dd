"""A real PostgreSQL for tests and benchmarks: Debian's `postgresql` binaries, a private cluster in a
temporary folder, listening only on the address the caller names (loopback by default) and on a
Unix socket in its own folder. Runs as the `postgres` system user when we are root (PostgreSQL
refuses root). Bounded: every wait has a deadline, `stop()` is `pg_ctl stop -m immediate` at worst.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from companion.demo.private_qbt import free_port

USER = "seedward"
DATABASE = "seedward"


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def missing() -> str | None:
    """Why PostgreSQL cannot run here, or None."""
    if bindir() is None:
        return "PostgreSQL is not installed (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
    return None


class PgServer:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, fsync: bool = False,
                 synchronous_commit: bool = False, max_connections: int = 60, netns: str | None = None,
                 allow: str | None = None):
        self.host = host
        self.port = port or free_port()
        self.fsync = fsync
        self.synchronous_commit = synchronous_commit
        self.max_connections = max_connections
        self.netns = netns  # run the server inside this network namespace
        self.allow = allow  # a subnet whose clients may connect over TCP (the multi-host test's)
        # not under pytest's tmp_path: the postgres user must be able to reach it
        self.root = Path(tempfile.mkdtemp(prefix="seedward-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "server.log"
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@{self.host}:{self.port}/{DATABASE}"

    def _as_owner(self, cmd: list[str]) -> list[str]:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        if os.geteuid() == 0:
            return prefix + ["runuser", "-u", "postgres", "--"] + cmd
        return prefix + cmd

    def _run(self, cmd: list[str], timeout: float = 120) -> None:
        subprocess.run(self._as_owner(cmd), check=True, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, cwd=self.root)

    def start(self, timeout: float = 60) -> "PgServer":
        b = bindir()
        self.sockets.mkdir()
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o755)
            for p in (self.root, self.sockets):
                os.chown(p, owner.pw_uid, owner.pw_gid)
        self._run([str(b / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust", "--no-locale",
                   "--encoding=UTF8", "--no-sync"])
        if self.allow:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {self.allow} trust\n")
        options = (f"-c listen_addresses={self.host} -c port={self.port} -c unix_socket_directories={self.sockets}"
                   f" -c max_connections={self.max_connections} -c shared_buffers=64MB"
                   f" -c fsync={'on' if self.fsync else 'off'}"
                   f" -c synchronous_commit={'on' if self.synchronous_commit else 'off'}"
                   f" -c full_page_writes={'on' if self.fsync else 'off'}")
        self._run([str(b / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                   "-t", str(int(timeout)), "start"], timeout=timeout + 10)
        self.started = True
        self._run([str(b / "createdb"), "-h", str(self.sockets), "-p", str(self.port), "-U", USER, DATABASE])
        return self

    def psql(self, sql: str) -> str:
        b = bindir()
        out = subprocess.run(self._as_owner([str(b / "psql"), "-h", str(self.sockets), "-p", str(self.port), "-U",
                                             USER, "-d", DATABASE, "-At", "-c", sql]),
                             check=True, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        return out.stdout

    def fresh_database(self, name: str) -> str:
        """A new empty database on this server; its URL."""
        self._run([str(bindir() / "createdb"), "-h", str(self.sockets), "-p", str(self.port), "-U", USER, name])
        return f"postgresql://{USER}@{self.host}:{self.port}/{name}"

    def stop(self) -> None:
        if self.started:
            b = bindir()
            try:
                self._run([str(b / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop"], timeout=40)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                self._run([str(b / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"], timeout=40)
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)


def wait_ready(url: str, timeout: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=3).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_counter = iter(range(1, 10**6))


@pytest.fixture(scope="module")
def pg_server():
    """A private PostgreSQL for this test module (skips with the reason when it cannot run)."""
    why = missing()
    if why:
        pytest.skip(why)
    server = PgServer().start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the module's server."""
    return pg_server.fresh_database(f"fleet{os.getpid()}_{next(_counter)}")
