"""`seedward verify` through the real command."""

import json
import os

from .helpers import flip_byte, make_torrent, seedward, write_payload


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
