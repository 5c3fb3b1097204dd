"""`seedward verify`, `seedward restore` in place and the demo, through the real command."""

import json
import os

from .helpers import flip_byte, make_torrent, seedward, wait_until, write_payload


def test_verify_quick_and_full(tmp_path):
    home = tmp_path / "home"
    content = write_payload(tmp_path / "dl" / "Album", {"01.flac": 60_000, "02.flac": 30_000})
    torrent = make_torrent(content, piece_size=16384, kind="hybrid", out=tmp_path / "a.torrent")
    added = seedward("catalog", "add", torrent, tmp_path / "dl", "--json", home=home)
    assert added.returncode == 0, added.stderr
    tid = json.loads(added.stdout)["id"]

    ok = seedward("verify", tid[:8], "--json", home=home)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"]

    flip_byte(content / "02.flac", 20_000)
    os.truncate(content / "01.flac", 10_000)
    quick = seedward("verify", "--all", "--json", home=home)
    assert quick.returncode == 1
    report = json.loads(quick.stdout)["torrents"][0]
    kinds = {f["path"]: f["kind"] for f in report["files"]}
    assert kinds == {"Album/01.flac": "truncated", "Album/02.flac": "damaged"}

    full = seedward("verify", tid, "--full", home=home)
    assert full.returncode == 1
    assert "DAMAGED" in full.stdout and "Album/02.flac" in full.stdout

    both = seedward("verify", tid, "--all", home=home)
    assert both.returncode == 2 and "give one torrent ID or --all" in both.stderr
    unknown = seedward("verify", "ffff", home=home)
    assert unknown.returncode == 2 and "ffff" in unknown.stderr


def test_demo_damages_a_sample_and_the_service_heals_it(tmp_path):
    out = seedward("demo", "--workdir", tmp_path, home=tmp_path / "unused-home")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    tail = out.stdout[out.stdout.index("an AI tagger rewrites"):]
    order = [tail.index(s) for s in ("protection: damaged", "protection: healing", "protection: protected",
                                     "seeding again")]
    assert order == sorted(order)
    assert "healed 1 piece" in tail and "no full recheck" in tail
    kept = next(p for p in (tmp_path / "seedward-home" / "quarantine").iterdir())
    assert (kept / "drift.json").exists()


def test_restore_in_place_without_the_service_stops_rechecks_and_resumes(qbt, tmp_path):
    """No service running: `seedward restore` talks to qBittorrent itself (config.toml)."""
    from .qbt import seed_sample

    home = tmp_path / "home"
    home.mkdir()
    secret = tmp_path / "qbt-password"
    secret.write_text(qbt.password)
    (home / "config.toml").write_text(f'[qbittorrent]\nurl = "{qbt.url}"\nusername = "{qbt.username}"\n'
                                      f'password_file = "{secret}"\n')
    tid, torrent = seed_sample(qbt, tmp_path / "dl", "Show", {"e01.mkv": 70_000, "e02.mkv": 20_000}, seed=5)
    content = tmp_path / "dl" / "Show"
    original = (content / "e01.mkv").read_bytes()
    try:
        assert seedward("catalog", "add", torrent, tmp_path / "dl", home=home).returncode == 0
        assert seedward("snapshot", tid, home=home).returncode == 0
        os.truncate(content / "e01.mkv", 30_000)
        r = seedward("restore", tid[:8], "--json", home=home)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["via"] == "local" and report["outcome"] == "healed" and report["recheck"]
        assert report["files"] == {"Show/e01.mkv": "truncated"}
        assert (content / "e01.mkv").read_bytes() == original
        # Rechecked by qBittorrent, complete, and seeding again (not left stopped).
        wait_until(lambda: qbt.client.torrents_info(torrent_hashes=tid)[0]["state"] in ("uploading", "stalledUP"),
                   30, 0.1, "seeding again")
        assert qbt.client.torrents_info(torrent_hashes=tid)[0]["progress"] == 1
        kept = json.loads((next((home / "quarantine").iterdir()) / "drift.json").read_text())
        assert kept["files"][0]["kind"] == "truncated"
    finally:
        qbt.client.torrents_delete(delete_files=False, torrent_hashes=tid)
