"""No `git` on PATH (issue 13 leftover): GitPython runs `git version` when first imported and raised
ImportError, so `seedward --help` and every verb importing it died in a 15-line traceback. Now help
works, and the verb that needs the manifests repo says so in one line."""

from tests.helpers import make_torrent, seedward, write_payload


def test_help_works_and_a_manifests_verb_says_git_is_missing(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()  # PATH without git (seedward's script names its python by absolute path)
    env = {"PATH": str(empty)}
    home = tmp_path / "home"
    r = seedward("--help", home=home, env=env)
    assert r.returncode == 0 and "usage: seedward" in r.stdout and "Traceback" not in r.stderr, r.stderr
    payload = write_payload(tmp_path / "dl" / "album", {"a.flac": 40_000})
    torrent = make_torrent(payload)
    r = seedward("catalog", "add", torrent, payload.parent, home=home, env=env)
    lines = r.stderr.strip().splitlines()
    assert r.returncode not in (0, 1) and len(lines) == 1 and "no git command" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and not (home / "manifests" / "torrents").exists()
