"""`seedward serve` as a real process: kill -9 in the middle of hashing, restart, every torrent
protected exactly once; SIGTERM stops it cleanly."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from companion.catalog import Catalog
from companion.control import request
from companion.errors import Error
from companion.home import Home
from tests.helpers import wait_until
from tests.qbt import seed_sample

pytestmark = pytest.mark.qbt

SEEDWARD = shutil.which("seedward") or str(Path(sys.executable).parent / "seedward")


def serve(qbt, home: Home, *args) -> subprocess.Popen:
    env = dict(os.environ, SEEDWARD_HOME=str(home.root), QBITTORRENTAPI_PASSWORD=qbt.password)
    log = open(home.root / "serve.log", "ab")
    try:
        return subprocess.Popen([SEEDWARD, "serve", *args], env=env, stdout=log, stderr=log)
    finally:
        log.close()


def status(home: Home) -> dict | None:
    try:
        return request(home, "status", timeout=10)
    except Error:
        return None


def write_config(qbt, home: Home, read_rate_mb: float) -> None:
    home.ensure()
    home.config.write_text(
        f'[qbittorrent]\nurl = "{qbt.url}"\nusername = "{qbt.username}"\npoll_seconds = 0.2\n'
        f"backoff_max_seconds = 2.0\n\n[service]\njobs = 2\nread_rate_mb = {read_rate_mb}\n"
        "removal_grace_seconds = 600.0\n\n[protection.default]\nlevel = \"catalog\"\n"
    )


def test_kill_9_mid_hashing_then_restart_protects_every_torrent_exactly_once(qbt, tmp_path):
    qbt.remove_all()  # leftovers of earlier tests would be protected too
    home = Home(tmp_path / "home")
    write_config(qbt, home, read_rate_mb=0.4)  # slow reads: the kill lands mid-hash
    ids = [seed_sample(qbt, tmp_path / "data", f"big{i}", {"a.bin": 600_000, "b.bin": 300_000}, seed=i)[0]
           for i in range(4)]
    proc = serve(qbt, home)
    try:
        wait_until(lambda: (s := status(home)) and s["service"]["running_jobs"], 60, what="hashing to start")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        cat = Catalog(home.catalog_db)
        try:
            assert cat.query("SELECT * FROM queue WHERE state = 'running'")  # the crash left work behind
        finally:
            cat.close()
        proc = serve(qbt, home, "--read-rate-mb", "0")

        def all_protected():
            s = status(home)
            return s and {t["id"]: t["protection"] for t in s["torrents"] if t["id"] in ids} == \
                {h: "protected" for h in ids} and s["service"]["queue"] == {"queued": 0, "running": 0}

        wait_until(all_protected, 60, what="every torrent protected after the restart")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        qbt.remove_all()

    assert not home.socket.exists()
    cat = Catalog(home.catalog_db)
    try:
        for h in ids:
            assert [r["ok"] for r in cat.query("SELECT ok FROM runs WHERE torrent_id = ?", (h,))] == [1]
            assert [e["kind"] for e in cat.events(h)].count("protected") == 1
        jobs = cat.query("SELECT torrent_id, state FROM queue WHERE kind = 'protect'")
        assert sorted(j["torrent_id"] for j in jobs) == sorted(ids)  # one job each, resumed, not repeated
        assert {j["state"] for j in jobs} == {"done"}
        started = [json.loads(e["detail"]) for e in cat.events() if e["kind"] == "service_started"]
        assert max(d["requeued"] for d in started) >= 1
    finally:
        cat.close()
