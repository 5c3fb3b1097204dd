"""Children get only what they need: a PATH shim records the environment of every git and
qbittorrent-nox seedward starts (manifests commits of the real `seedward` command, the private
qbittorrent-nox launcher) while seedward's own environment holds its secrets."""

import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from companion.childenv import BASE, PROFILES, SECRET_ENV, child_env
from tests.helpers import make_torrent, seedward, write_payload

SECRETS = {"QBITTORRENTAPI_PASSWORD": "webui-secret-in-env", "SEEDWARD_ARCHIVE_PASSPHRASE": "archive-secret-in-env"}


def shim(bin_dir: Path, log_dir: Path, name: str) -> None:
    """bin_dir/name records its environment (NUL-separated) into log_dir, then runs the real program."""
    real = shutil.which(name)
    assert real, f"{name} is not installed"
    bin_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / name
    script.write_text(f'#!/bin/sh\n/usr/bin/env -0 > "{log_dir}/{name}.$$"\necho "$@" > "{log_dir}/args-{name}.$$"\nexec "{real}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def recorded(log_dir: Path, name: str) -> list[tuple[str, dict]]:
    """[(the child's arguments, its environment)] for every run of the shimmed program."""
    runs = []
    for path in sorted(log_dir.glob(f"{name}.*")):
        pairs = [item.split("=", 1) for item in path.read_bytes().decode().split("\0") if "=" in item]
        runs.append(((log_dir / f"args-{path.name}").read_text().strip(), dict(pairs)))
    return runs


def assert_no_secret(env: dict) -> None:
    for key, value in env.items():
        assert key not in SECRET_ENV
        assert not any(secret in value for secret in SECRETS.values()), key


def assert_contained(env: dict, program: str, extra_names=()) -> None:
    """No secret; only the profile's names and what seedward itself sets for the program."""
    assert_no_secret(env)
    names, prefixes = PROFILES[program]
    allowed = set(BASE) | set(names) | set(extra_names)
    for key in env:
        assert key in allowed or key.startswith(prefixes) or (program == "git" and key.startswith("GIT_")), key


def test_profiles_drop_secrets_and_unknown_names():
    environ = {"PATH": "/bin", "HOME": "/h", "RCLONE_CONFIG_B2_KEY": "k", "AWS_ACCESS_KEY_ID": "a", "EDITOR": "vi",
               "SEEDWARD_HOME": "/s", **SECRETS}
    assert child_env("par2", environ=environ) == {"PATH": "/bin", "HOME": "/h"}
    assert child_env("rclone", {"RCLONE_CONFIG": "/c"}, environ=environ) == {
        "PATH": "/bin", "HOME": "/h", "RCLONE_CONFIG_B2_KEY": "k", "AWS_ACCESS_KEY_ID": "a", "RCLONE_CONFIG": "/c"}
    with pytest.raises(ValueError):
        child_env("7z", {"SEEDWARD_ARCHIVE_PASSPHRASE": "x"}, environ=environ)


def test_manifests_commits_give_git_only_its_environment(tmp_path):
    bin_dir, logs = tmp_path / "bin", tmp_path / "logs"
    shim(bin_dir, logs, "git")
    content = write_payload(tmp_path / "data" / "pack", {"a.bin": 20_000})
    torrent = make_torrent(content, out=tmp_path / "pack.torrent")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "EDITOR": "not-for-git", **SECRETS}
    proc = seedward("catalog", "add", torrent, tmp_path / "data", home=tmp_path / "home", env=env)
    assert proc.returncode == 0, proc.stderr
    runs = recorded(logs, "git")
    assert any(args.startswith("commit") for args, _env in runs), "seedward's manifests commit ran no git via PATH"
    for args, child in runs:
        assert_no_secret(child)  # seedward took its secrets out of its environment first thing
        if args != "version":  # GitPython's own probe when it is imported, before seedward can contain it
            assert_contained(child, "git", extra_names={"PWD"})
            assert "EDITOR" not in child and child["PATH"] == env["PATH"]
            if args.startswith("commit"):
                assert child["GIT_CONFIG_GLOBAL"] == os.devnull  # seedward's own git settings still apply


def test_the_private_qbittorrent_gets_only_its_environment(tmp_path, monkeypatch):
    from companion.demo.private_qbt import QbtProcess

    bin_dir, logs = tmp_path / "bin", tmp_path / "logs"
    shim(bin_dir, logs, "qbittorrent-nox")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "users-config"))
    with QbtProcess(tmp_path / "qbt") as qbt:
        assert qbt.client.app_version()
    runs = recorded(logs, "qbittorrent-nox")
    assert len(runs) == 1
    _args, child = runs[0]
    assert_contained(child, "qbittorrent-nox", extra_names={"PWD"})
    assert child["HOME"] == str(tmp_path / "qbt") and "XDG_CONFIG_HOME" not in child


EXECVE = re.compile(r'^execve\("([^"]+)", \[(.*)\], \[(.*)\]\) = 0$')


def traced_execs(prefix: Path) -> list[tuple[str, str, list[str]]]:
    """[(program path, the whole execve line, environment names)] of every successful execve, from
    `strace -ff -v -e trace=execve -o PREFIX`: one file PREFIX.PID per process, so another process's
    execve never cuts one in two (with `-f` and one log, two children exec'ing at once split a call
    into "<unfinished ...>" and "<... execve resumed>" lines, which is how a child went missing). A
    call still split within one process (a signal) is joined; a successful execve that does not parse
    fails the test instead of being skipped."""
    out = []
    logs = list(prefix.parent.glob(prefix.name + ".*"))
    assert logs, f"strace wrote no {prefix}.PID file"
    for log in logs:
        pending = ""
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("execve(") and line.endswith(" <unfinished ...>"):
                pending = line[: -len(" <unfinished ...>")]
                continue
            if line.startswith("<... execve resumed>"):
                line, pending = pending + line[len("<... execve resumed>"):], ""
            if line.startswith("execve(") and line.endswith(" = 0"):
                m = EXECVE.match(line)
                assert m, f"{log.name}: an execve strace logged that does not parse: {line[:200]}"
                out.append((m.group(1), line, re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)=', m.group(3))))
    return out


def strace_works(tmp_path) -> bool:
    exe = shutil.which("strace")
    if exe is None:
        return False
    import subprocess

    proc = subprocess.run([exe, "-f", "-o", str(tmp_path / "probe.log"), "-e", "trace=execve", "true"],
                          capture_output=True)
    return proc.returncode == 0


def test_archive_create_children_get_only_their_environment(tmp_path):
    """`seedward archive create` with the documented environment variables set (the passphrase and the
    WebUI password): every program it starts, traced with strace (rclone and par2 come from their
    wheels beside Python, not from PATH, so a PATH shim cannot catch them), gets neither secret and,
    for git, rclone, par2 and 7z, only its profile's variables."""
    import subprocess

    from tests.test_archive import add_torrent, configure

    if not strace_works(tmp_path):
        pytest.skip("strace cannot trace here")
    home = tmp_path / "home"
    home.mkdir()
    remote = tmp_path / "remote"
    remote.mkdir()
    rclone_conf = tmp_path / "rclone.conf"  # a remote rclone must drive (an alias of a local folder)
    rclone_conf.write_text(f"[offsite]\ntype = alias\nremote = {remote}\n")
    configure(home, volume_kb=64, remote="offsite:sets", rclone_config=str(rclone_conf))
    add_torrent(tmp_path, home, "show", {"ep1.mkv": 300_000, "ep2.mkv": 200_000}, seed=3)
    prefix = tmp_path / "trace" / "execve"
    prefix.parent.mkdir()
    env = dict(os.environ, SEEDWARD_HOME=str(home), EDITOR="not-for-children", **SECRETS)
    exe = shutil.which("seedward") or str(Path(os.sys.executable).parent / "seedward")
    proc = subprocess.run(["strace", "-ff", "-v", "-s", "65536", "-e", "trace=execve", "-o", str(prefix),
                           exe, "archive", "create", "--tier", "daily", "--json"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    execs = traced_execs(prefix)
    commands = [e for e in execs if Path(e[0]).name == "seedward"]
    assert len(commands) == 1, [e[0] for e in execs]  # the command itself, with what the user gave it
    children = [e for e in execs if e is not commands[0]]
    names = {Path(path).name for path, _line, _env in children}
    assert {"git", "rclone", "par2"} <= names, names
    for path, line, env_names in children:
        for secret in SECRETS.values():
            assert secret not in line, f"{path} got a secret"
        if '["git", "version"]' in line:
            continue  # GitPython's own probe when it is imported: seedward's secrets are already gone
        assert "EDITOR" not in env_names and "SEEDWARD_HOME" not in env_names, (path, env_names)
        program = {"7zz": "7z", "7za": "7z"}.get(Path(path).name, Path(path).name)
        if program in PROFILES:
            names_, prefixes = PROFILES[program]
            allowed = set(BASE) | set(names_) | {"PWD"}
            extra = [n for n in env_names if n not in allowed and not n.startswith(prefixes)
                     and not (program == "git" and n.startswith("GIT_"))]
            assert not extra, (path, extra)
