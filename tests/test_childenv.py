"""Children get only what they need: a PATH shim records the environment of every git and
qbittorrent-nox seedward starts (manifests commits of the real `seedward` command, the private
qbittorrent-nox launcher) while seedward's own environment holds its secrets."""

import os
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
