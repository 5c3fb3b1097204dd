"""Jobs see nothing of seedward's: a real `seedward job run` in real bwrap, with a command that tries
to read seedward's secrets (environment, files, /proc), list its home, reach its control socket and
open a TCP connection to a loopback listener of the test's own."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from companion.sandbox import probe_bwrap
from tests.helpers import make_torrent, write_payload

pytestmark = pytest.mark.skipif(probe_bwrap() is not None, reason=f"bwrap unusable here: {probe_bwrap()}")

SECRETS = {"QBITTORRENTAPI_PASSWORD": "qbt-env-secret-1", "SEEDWARD_ARCHIVE_PASSPHRASE": "archive-env-secret-2"}
FILE_SECRETS = ("webui-file-secret-3", "xdg-config-secret-4", "hidden-by-config-5", "config-toml-secret-6")

PROBE = textwrap.dedent("""
    import errno, json, os, socket, sys
    paths = json.loads(sys.argv[1])
    seen = {"env": dict(os.environ), "files": {}, "listing": {}, "proc": [], "connect": {}}
    for name, path in paths["files"].items():
        try:
            with open(path, errors="replace") as fh:
                seen["files"][name] = fh.read()
        except OSError as exc:
            seen["files"][name] = errno.errorcode[exc.errno]
    for name, path in paths["folders"].items():
        try:
            seen["listing"][name] = sorted(os.listdir(path))
        except OSError as exc:
            seen["listing"][name] = errno.errorcode[exc.errno]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                seen["proc"].append(open(f"/proc/{pid}/environ", errors="replace").read())
            except OSError:
                pass
    for name, target in (("socket", paths["socket"]), ("tcp", ("127.0.0.1", paths["port"]))):
        s = socket.socket(socket.AF_UNIX if name == "socket" else socket.AF_INET)
        s.settimeout(5)
        try:
            s.connect(target)
            s.sendall(b"hello from the job\\n")
            seen["connect"][name] = "connected"
        except OSError as exc:
            seen["connect"][name] = errno.errorcode.get(exc.errno, str(exc))
        finally:
            s.close()
    out = os.environ["SEEDWARD_OUTPUT"]
    with open(os.path.join(out, "seen.json"), "w") as fh:
        json.dump(seen, fh)
""")


class Listener:
    """A listening socket (TCP on loopback, or Unix) that records every connection it accepts."""

    def __init__(self, family, address):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.accepted = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(conn.recv(100))
            conn.close()

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def walled(tmp_path):
    """A cataloged torrent, a state home given as a RELATIVE path, secrets in the environment, in the
    config folder, in a password file and in config.toml, a control socket and a TCP listener."""
    seed = tmp_path / "seed"
    write_payload(seed / "show", {"ep1.bin": 30_000}, seed=3)
    torrent = make_torrent(seed / "show", out=tmp_path / "show.torrent")
    xdg = tmp_path / "xdg-config"
    (xdg / "seedward").mkdir(parents=True)
    (xdg / "seedward" / "qbt-password").write_text(FILE_SECRETS[1])
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "webui-password").write_text(FILE_SECRETS[0])
    private = tmp_path / "private"
    private.mkdir()
    (private / "note").write_text(FILE_SECRETS[2])
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(textwrap.dedent(f"""
        [qbittorrent]
        password = "{FILE_SECRETS[3]}"
        password_file = "{secrets_dir / 'webui-password'}"
        [jobs]
        hide = ["{private}"]
    """))
    env = dict(os.environ, SEEDWARD_HOME="home", XDG_CONFIG_HOME=str(xdg), MY_MODEL_DIR="/models/m1",
               NOT_DECLARED="should-not-pass", **SECRETS)
    exe = str(Path(sys.executable).parent / "seedward")

    def run(*args):
        return subprocess.run([exe, *map(str, args)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)

    added = run("catalog", "add", torrent, seed, "--json")
    assert added.returncode == 0, added.stderr
    unix = Listener(socket.AF_UNIX, str(home / "control.sock"))
    tcp = Listener(socket.AF_INET, ("127.0.0.1", 0))
    paths = {"files": {"config.toml": str(home / "config.toml"), "catalog": str(home / "catalog.sqlite"),
                       "webui-password": str(secrets_dir / "webui-password"),
                       "xdg-password": str(xdg / "seedward" / "qbt-password"), "hidden-note": str(private / "note"),
                       "input": "/seedward/input/show/ep1.bin"},
             "folders": {"home": str(home), "xdg": str(xdg), "private": str(private)},
             "socket": str(home / "control.sock"), "port": tcp.sock.getsockname()[1]}
    (tmp_path / "probe.py").write_text(PROBE)
    yield {"run": run, "id": json.loads(added.stdout)["id"], "paths": paths, "unix": unix, "tcp": tcp,
           "tmp": tmp_path, "home": home, "seed": seed}
    unix.close()
    tcp.close()


def probe(w, *options):
    proc = w["run"]("job", "run", "--torrent", w["id"][:12], "--model", "probe", "--model-version", "1", "--json",
                    *options, "--", sys.executable, w["tmp"] / "probe.py", json.dumps(w["paths"]))
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["state"] == "done", proc.stderr
    seen_path = next(Path(o["path"]) for o in out["outputs"] if o["path"].endswith("seen.json"))
    return out, json.loads(seen_path.read_text())


def test_a_job_sees_nothing_of_seedwards(walled):
    w = walled
    out, seen = probe(w, "--env", "MY_MODEL_DIR", "--env", "THREADS=4")
    # The environment is what the job declared and what seedward documents, nothing inherited.
    assert set(seen["env"]) == {"PATH", "HOME", "TMPDIR", "LANG", "PWD", "MY_MODEL_DIR", "THREADS", "SEEDWARD_INPUT",
                                "SEEDWARD_OUTPUT", "SEEDWARD_JOB_ID", "SEEDWARD_MODEL", "SEEDWARD_MODEL_VERSION",
                                "SEEDWARD_PROMPT", "SEEDWARD_PARAMS"}, seen["env"]
    assert seen["env"]["MY_MODEL_DIR"] == "/models/m1" and seen["env"]["THREADS"] == "4"
    # No secret anywhere the job looked: environment, /proc, files, listings.
    everything = json.dumps(seen)
    for secret in (*SECRETS.values(), *FILE_SECRETS):
        assert secret not in everything
    # The state home (given relative) and the config folder are not there; the password file elsewhere
    # is covered by /dev/null on a nodev mount (unreadable).
    files = seen["files"]
    assert files["config.toml"] == files["catalog"] == "ENOENT"
    assert files["xdg-password"] == "ENOENT" and files["hidden-note"] == "ENOENT"
    assert files["webui-password"] == "EACCES"
    assert seen["listing"] == {"home": [], "xdg": [], "private": []}
    assert files["input"] == (w["seed"] / "show" / "ep1.bin").read_text(errors="replace")  # the inputs are
    # The control socket cannot be reached, nor the host's loopback: the listeners saw nobody.
    assert seen["connect"]["socket"] == "ENOENT"
    assert seen["connect"]["tcp"] == "ECONNREFUSED"
    assert w["unix"].accepted == [] and w["tcp"].accepted == []
    # The home was made absolute once: the job's records hold absolute paths, usable from anywhere.
    shown = subprocess.run([str(Path(sys.executable).parent / "seedward"), "--home", str(w["home"]), "job", "show",
                            out["id"], "--json"], capture_output=True, text=True, cwd="/", timeout=60)
    assert shown.returncode == 0, shown.stderr
    job = json.loads(shown.stdout)
    assert Path(job["workdir"]).is_absolute() and Path(job["workdir"]).is_relative_to(w["home"])


def test_the_network_only_when_the_job_asks(walled):
    w = walled
    _out, seen = probe(w, "--network")
    assert seen["connect"]["tcp"] == "connected"
    assert w["tcp"].accepted == [b"hello from the job\n"]
    assert seen["connect"]["socket"] == "ENOENT" and w["unix"].accepted == []  # the home stays hidden


def test_seedwards_secrets_cannot_be_declared(walled):
    w = walled
    for name in ("SEEDWARD_ARCHIVE_PASSPHRASE", "QBITTORRENTAPI_PASSWORD=x", "SEEDWARD_HOME"):
        proc = w["run"]("job", "run", "--torrent", w["id"][:12], "--model", "m", "--model-version", "1", "--json",
                        "--env", name, "--", "true")
        assert proc.returncode == 2 and "seedward's own" in proc.stderr
        out = json.loads(proc.stdout)  # --json: one object whatever happens
        assert out["state"] == "not_started" and out["id"] is None and "seedward's own" in out["error"]
