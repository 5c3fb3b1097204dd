"""Pure parts of the ladder: media layout extents, zone segments, budget, the auto plan, coverage;
and `seedward coverage` on a real catalog."""

import json

import pytest

from companion.errors import ConfigError
from companion.ladder.budget import Candidate, budget_bytes, parse_budget, plan
from companion.ladder.coverage import CLASSES, FileFacts, TorrentFacts, coverage
from companion.ladder.layout import extents, id3v2_size, tail_tags
from tests.helpers import make_torrent, seedward, write_payload


def reader(data: bytes):
    return lambda offset, length: data[offset : offset + length]


def test_layout_finds_id3_flac_and_tail_tags():
    tag = b"ID3\x03\x00\x00" + bytes([0, 0, 2, 1]) + bytes(257)  # syncsafe 0x101 = 257 bytes of frames
    assert id3v2_size(tag) == 267
    flac = b"fLaC" + bytes([0x00, 0, 0, 34]) + bytes(34) + bytes([0x86, 0, 0, 10]) + bytes(10) + b"\xff\xf8audio"
    body = tag + flac + bytes(1000) + b"TAG" + bytes(125)
    ext = extents(reader(body), len(body))
    assert ext.kind == "flac" and ext.head == 267 + 4 + 38 + 14 and ext.tail == 128
    assert tail_tags(b"x" * 10) == 0


def test_budget_share_or_size():
    assert parse_budget("2%") == (2.0, None) and parse_budget("500G") == (None, 500 << 30)
    assert budget_bytes("1.5%", 1000) == 15 and budget_bytes("1M", 0) == 1 << 20
    with pytest.raises(ConfigError):
        parse_budget("lots")


def test_auto_plan_gives_small_torrents_full_snapshots_within_the_budget():
    cands = [Candidate("big", 10_000, 50, "auto", 1000), Candidate("small", 300, 20, "auto", 1000),
             Candidate("tiny", 100, 10, "auto", 1000), Candidate("asked", 400, 5, "snapshot")]
    p = plan(cands, budget=700)
    assert p.full == {"asked", "tiny"} and not p.over  # small first; "small" would pass the budget
    assert plan(cands, budget=100).over  # the snapshot asked for does not fit: said, not hidden


def test_coverage_counts_no_swarm_and_names_tiers():
    zoned = FileFacts("a.flac", 10, zoned=True, head_covered=True, tail_kept=True)
    bare = FileFacts("b.mkv", 10)
    c = coverage(TorrentFacts("t", "t", [zoned]))
    assert c.classes["resized_header"] == {"survives": True, "from": ["shift+zones"], "files_not": 0}
    assert not c.classes["file_deleted"]["survives"] and c.classes["file_deleted"]["last_resort"] == "swarm"
    c = coverage(TorrentFacts("t", "t", [zoned, bare]))
    assert not c.classes["in_place_tag_edit"]["survives"] and c.classes["in_place_tag_edit"]["files_not"] == 1
    full = coverage(TorrentFacts("t", "t", [zoned, bare], full=True))
    assert full.survived == list(CLASSES) and "full" in full.tiers


def test_coverage_command(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    write_payload(data / "rel", {"a.bin": 300_000, "b.bin": 70_000})
    torrent = make_torrent(data / "rel", 16384, "hybrid", out=tmp_path / "rel.torrent")
    tid = json.loads(seedward("catalog", "add", torrent, data, "--json", home=home, check=True).stdout)["id"]
    out = json.loads(seedward("coverage", tid[:8], "--json", home=home, check=True).stdout)
    t = out["torrents"][0]
    assert t["torrent_id"] == tid and not t["classes"]["in_place_tag_edit"]["survives"]  # catalog only
    assert t["classes"]["tail_tag_appended"]["survives"]  # the shift heal needs nothing kept
    assert out["budget"]["budget"] == "2%" and out["budget"]["store_bytes"] == 0
    assert out["budget"]["budget_bytes"] == 1 << 30  # 2 % of a small library: the 1 GiB floor (budget_min)
    seedward("snapshot", tid, home=home, check=True)
    out = json.loads(seedward("coverage", "--json", home=home, check=True).stdout)
    assert all(v["survives"] for v in out["torrents"][0]["classes"].values())
    assert not out["budget"]["over_budget"]
    (home / "config.toml").write_text('[protection]\nbudget_min = "0"\n')  # the share alone
    out = json.loads(seedward("coverage", "--json", home=home, check=True).stdout)
    assert out["budget"]["over_budget"]  # a full snapshot is 100 % of the payload: more than 2 %, and said so
    assert "OVER BUDGET" in seedward("coverage", home=home, check=True).stdout
    (home / "config.toml").write_text('[protection]\nbudget_min = "lots"\n')
    bad = seedward("coverage", home=home)
    assert bad.returncode == 2 and "protection.budget_min" in bad.stderr  # a clear one-line error
