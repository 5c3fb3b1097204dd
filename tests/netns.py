"""Several 'hosts' on this machine for the fleet test: network namespaces joined by a bridge with
addresses of the test's own (a random 10.x.y.0/24), the shared servers on the bridge's address in
the test's own namespace. Needs root and `ip` (iproute2); `missing()` says why not."""

import os
import random
import shutil
import subprocess
from pathlib import Path

from companion.demo.private_qbt import QbtProcess


def missing() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "ip (Debian package iproute2) is not installed"
    probe = f"swfprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot make a network namespace here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


class Net:
    def __init__(self, hosts: int):
        tag = f"{os.getpid() % 100000}"
        self.bridge = f"swb{tag}"
        self.prefix = f"10.{random.randint(100, 250)}.{random.randint(1, 250)}"
        self.server = f"{self.prefix}.1"  # the bridge: PostgreSQL and the object store listen here only
        self.names = [f"swh{tag}{chr(97 + i)}" for i in range(hosts)]
        self.address = {ns: f"{self.prefix}.{11 + i}" for i, ns in enumerate(self.names)}
        self.made: list[str] = []

    @property
    def subnet(self) -> str:
        return f"{self.prefix}.0/24"

    def up(self) -> "Net":
        _ip("link", "add", self.bridge, "type", "bridge")
        self.made.append("bridge")
        _ip("addr", "add", f"{self.server}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, ns in enumerate(self.names):
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
            self.made.append(ns)
            outer, inner = f"swv{i}{os.getpid() % 10000}", "eth0"
            _ip("link", "add", outer, "type", "veth", "peer", "name", f"swi{i}{os.getpid() % 10000}")
            _ip("link", "set", f"swi{i}{os.getpid() % 10000}", "netns", ns)
            _ip("link", "set", f"swi{i}{os.getpid() % 10000}", "name", inner, ns=ns)
            _ip("addr", "add", f"{self.address[ns]}/24", "dev", inner, ns=ns)
            _ip("link", "set", inner, "up", ns=ns)
            _ip("link", "set", "lo", "up", ns=ns)
            _ip("link", "set", outer, "master", self.bridge)
            _ip("link", "set", outer, "up")
        return self

    def down(self) -> None:
        for ns in self.names:
            if ns in self.made:
                subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
                for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
                    try:
                        os.kill(int(pid), 9)
                    except (ProcessLookupError, ValueError):
                        pass
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if "bridge" in self.made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)

    def prefix_cmd(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]


class NetnsQbt(QbtProcess):
    """A qbittorrent-nox inside a namespace: its WebUI on the namespace's own address (the test
    reaches it there; the host's seedward uses the namespace's loopback)."""

    def __init__(self, root: Path, ns: str, address: str):
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        wrapper = root / "qbittorrent-nox-in-ns"
        wrapper.write_text(f"#!/bin/sh\nexec ip netns exec {ns} {shutil.which('qbittorrent-nox')} \"$@\"\n")
        wrapper.chmod(0o755)
        super().__init__(root, exe=str(wrapper))
        self.address = address
        conf = self.profile / "qBittorrent" / "config" / "qBittorrent.conf"
        conf.write_text(conf.read_text().replace("WebUI\\Address=127.0.0.1", "WebUI\\Address=*"))

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
