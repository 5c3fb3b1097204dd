"""A secret file that is not UTF-8 text (a binary key file, a wrong file named) is one line naming
the file, never a UnicodeDecodeError traceback, and never its content: the WebUI password file, the
archive passphrase file, [notify] urls_file, the catalog's password file; a remote set manifest
that is not text is "not valid JSON" (exit 13)."""

from pathlib import Path

import pytest

from tests.helpers import seedward

GARBAGE = b"\xff\xfe\x00secret-bytes\x80\n"


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "secret-bytes" not in stderr
    return lines[0]


@pytest.fixture
def garbage(tmp_path) -> Path:
    path = tmp_path / "not-text"
    path.write_bytes(GARBAGE)
    path.chmod(0o600)
    return path


def home_with(tmp_path, config: str) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(config)
    return home


def test_a_webui_password_file_that_is_not_text(tmp_path, garbage):
    home = home_with(tmp_path, f'[qbittorrent]\nurl = "http://127.0.0.1:1"\npassword_file = "{garbage}"\n')
    proc = seedward("qbt", "login", home=home)
    assert proc.returncode == 4  # as for an unreadable one: qBittorrent cannot be logged in to
    assert f"{garbage}: bad configuration: the password file is not UTF-8 text" in one_line(proc.stderr)


def test_an_archive_passphrase_file_that_is_not_text(tmp_path, garbage):
    home = home_with(tmp_path, f'[archive]\nremote = "{tmp_path / "remote"}"\n')
    proc = seedward("archive", "create", "--tier", "daily", "--passphrase-file", garbage, home=home)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == f"seedward: {garbage}: the passphrase file is not UTF-8 text"
    assert not (tmp_path / "remote").exists()


def test_a_notify_urls_file_that_is_not_text(tmp_path, garbage):
    home = home_with(tmp_path, f'[notify]\nurls_file = "{garbage}"\n')
    proc = seedward("notify", "test", home=home)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == f"seedward: {garbage}: bad configuration: notify.urls_file is not UTF-8 text"


def test_a_catalog_password_file_that_is_not_text(tmp_path, garbage):
    home = home_with(tmp_path, f'[catalog]\nurl = "postgresql://seedward@127.0.0.1:1/seedward"\n'
                               f'password_file = "{garbage}"\n')
    proc = seedward("status", home=home)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (f"seedward: {garbage}: bad configuration: the catalog password file is not "
                                     "UTF-8 text")


def test_a_remote_set_manifest_that_is_not_text(tmp_path):
    remote = tmp_path / "remote"
    (remote / "weekly" / "20260101T000000Z-abcdef").mkdir(parents=True)
    (remote / "weekly" / "20260101T000000Z-abcdef" / "set.json").write_bytes(GARBAGE)
    home = home_with(tmp_path, "")
    proc = seedward("archive", "list", "--remote", remote, home=home)
    assert proc.returncode == 13
    assert one_line(proc.stderr).endswith("weekly/20260101T000000Z-abcdef/set.json is not valid JSON")
