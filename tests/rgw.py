"""A real S3 implementation for tests: Ceph's radosgw on a one-node cluster (one monitor, one
memstore OSD), all on loopback under a temporary folder, no authentication inside the cluster.
Debian packages radosgw, ceph-mon, ceph-osd (in ./quickstart)."""

import json
import random
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

from companion.demo.private_qbt import free_port

BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
ACCESS, SECRET = "SEEDWARDTESTKEY", "seedward-test-secret-key"


def missing() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


class Rgw:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.mon_port, self.port = free_port(), free_port()
        # the OSD's own ports: a range of this cluster's (the default 6800+ is shared by every cluster on
        # the host, and a second one running at once had its OSD answered by the first: "wrong fsid")
        self.bind_min = random.randrange(10000, 32400, 200)  # below the ephemeral ports free_port() gets
        self.conf = self.root / "ceph.conf"
        self.procs: list[subprocess.Popen] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ceph(self, *args: str, timeout: float = 60) -> str:
        """One `ceph` command. Under load the client may send it before it has the monitor's map (the
        monitor sees fsid 0 and the client says "EPERM: problem getting command descriptions from
        mon"): sent again, for at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return subprocess.run(["ceph", "-c", str(self.conf), "--connect-timeout", "20", *args], check=True,
                                      capture_output=True, text=True, timeout=timeout).stdout
            except subprocess.CalledProcessError as exc:
                if "problem getting command descriptions" not in exc.stderr or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _daemon(self, *cmd: str) -> None:
        log = open(self.root / "log" / f"{Path(cmd[0]).name}.out", "ab")
        self.procs.append(subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True))
        log.close()

    def start(self, timeout: float = 120) -> "Rgw":
        for sub in ("mon", "osd", "run", "log", "rgw"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        r = self.root
        # Debian 13's Ceph (reef) has a relative default class dir (lib/<triplet>/rados-classes): the OSD
        # found no object class from the test's working folder and radosgw failed with EOPNOTSUPP.
        classes = sorted(Path("/usr/lib").glob("*/rados-classes/libcls_rgw.so")) + sorted(
            Path("/usr/lib64").glob("rados-classes/libcls_rgw.so"))
        class_dir = f"osd class dir = {classes[0].parent}\n" if classes else ""
        self.conf.write_text(f"""[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{self.mon_port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon max pg per osd = 1000
osd pool default pg autoscale mode = off
rgw rados pool pg num min = 8
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
{class_dir}memstore device bytes = 1073741824
osd max object name len = 460
osd max object namespace len = 64
run dir = {r}/run
log file = {r}/log/$name.log
admin socket = {r}/run/$name.asok
ms bind ipv6 = false
ms bind port min = {self.bind_min}
ms bind port max = {self.bind_min + 199}
public addr = 127.0.0.1
[mon.a]
mon data = {r}/mon
[osd.0]
osd data = {r}/osd
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{self.port}
rgw data = {r}/rgw
keyring = /dev/null
""")
        run = lambda *cmd: subprocess.run(list(cmd), check=True, capture_output=True, timeout=60)  # noqa: E731
        run("monmaptool", "--create", "--add", "a", f"v1:127.0.0.1:{self.mon_port}", "--fsid", fsid,
            str(r / "monmap"))
        run("ceph-mon", "-c", str(self.conf), "--mkfs", "-i", "a", "--monmap", str(r / "monmap"))
        self._daemon("ceph-mon", "-f", "-c", str(self.conf), "-i", "a")
        self._ceph("osd", "create")
        run("ceph-osd", "-c", str(self.conf), "-i", "0", "--mkfs")
        deadline = time.monotonic() + timeout
        self._start_osd(deadline)
        self._daemon("radosgw", "-f", "-c", str(self.conf), "-n", "client.rgw")
        while not self._answers():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.stop()
                raise RuntimeError(f"radosgw did not come up; logs in {r / 'log'}")
            time.sleep(0.5)
        subprocess.run(["radosgw-admin", "-c", str(self.conf), "-n", "client.rgw", "user", "create", "--uid", "seedward",
                        "--display-name", "seedward", "--access-key", ACCESS, "--secret", SECRET],
                       check=True, capture_output=True, timeout=60)
        return self

    def _start_osd(self, deadline: float) -> None:
        """Start the OSD and wait until the monitor counts it up. Pacific's OSD sometimes aborts while
        it registers (std::out_of_range in io_context_pool, no mgr here), or under load it asks the
        monitor before it has its map ("wrong fsid"): start it again, a few times."""
        for attempt in range(6):
            if attempt:
                time.sleep(1)
            self._daemon("ceph-osd", "-f", "-c", str(self.conf), "-i", "0")
            osd = self.procs[-1]
            while osd.poll() is None and time.monotonic() < deadline:
                if json.loads(self._ceph("osd", "stat", "-f", "json")).get("num_up_osds") == 1:
                    return
                time.sleep(0.3)
            if osd.poll() is None:
                break
            self.procs.remove(osd)
        self.stop()
        raise RuntimeError(f"the OSD did not come up; logs in {self.root / 'log'}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=2) as resp:
                return b"ListAllMyBucketsResult" in resp.read()
        except OSError:
            return False

    def rclone_conf(self, path: Path, name: str = "rgw") -> Path:
        path.write_text(f"[{name}]\ntype = s3\nprovider = Ceph\naccess_key_id = {ACCESS}\n"
                        f"secret_access_key = {SECRET}\nendpoint = {self.endpoint}\nforce_path_style = true\n")
        return path

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
