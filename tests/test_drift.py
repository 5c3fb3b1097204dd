"""Drift detection without qBittorrent: the pure classifier and debounce, and the watch layer on
real inotify (one watch per directory, inode watches for hard links)."""

import os
import queue
import time

from companion.drift import Baseline, Debouncer, Observed, PayloadWatch, classify
from companion.drift.reconcile import diff_stat
from companion.drift.scrub import plan_scrub



def test_classify_every_kind():
    base = Baseline(1000, inode=7, device=1)
    seg = ((0, 0, 512),)
    assert classify(base, Observed("ok", (), 1000, 7, 1)).kind == "false_alarm"
    same_bytes_new_inode = classify(base, Observed("ok", (), 1000, 8, 1))
    assert same_bytes_new_inode.kind == "false_alarm" and "same bytes" in same_bytes_new_inode.detail
    d = classify(base, Observed("damaged", seg, 1000, 7, 1, nlink=2))
    assert (d.kind, d.pieces, d.hardlinked, d.whole_file, d.needs_recheck) == ("damaged", [0], True, False, False)
    assert classify(base, Observed("size_mismatch", seg, 10, 7, 1)).kind == "truncated"
    extended = classify(base, Observed("size_mismatch", (), 1200, 7, 1))
    assert extended.kind == "extended" and extended.needs_recheck and not extended.whole_file
    assert classify(base, Observed("missing", seg, None)).kind == "missing"
    replaced = classify(base, Observed("damaged", seg, 1000, 9, 1))
    assert replaced.kind == "replaced" and replaced.whole_file


def test_debounce_waits_for_quiet_but_not_forever():
    d = Debouncer(0.3, longest=1.0)
    d.touch("a", 0.0)
    d.touch("a", 0.2)
    assert d.due(0.4) == []
    assert d.due(0.5) == ["a"]
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        d.touch("b", t)  # written continuously
    assert d.due(1.0) == ["b"]
    assert d.next_deadline() is None


def test_scrub_plan_and_reconcile_diff():
    files = [{"size": 50, "id": 1}, {"size": 30, "id": 2}, {"size": 20, "id": 3}]
    assert [f["id"] for f in plan_scrub(files, 10)] == [1]  # at least one file
    assert [f["id"] for f in plan_scrub(files, 80)] == [1, 2]
    row = {"size": 10, "mtime_ns": 5, "inode": 3, "device": 1}

    class St:
        st_size, st_mtime_ns, st_ino, st_dev = 10, 5, 3, 1

    assert diff_stat(row, St) is None
    assert diff_stat(row, None) == "missing"
    St.st_ino = 4
    assert diff_stat(row, St) == "inode"


def _drain(q, want, timeout=5.0):
    got = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not want <= got:
        try:
            got.add((q.get(timeout=0.1).path))
        except queue.Empty:
            pass
    return got


def _drain_kinds(q, want, timeout=5.0):
    got = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not want <= got:
        try:
            ev = q.get(timeout=0.1)
            got.add((ev.kind, ev.path))
        except queue.Empty:
            pass
    return got


def test_watch_shared_directory_and_hardlinks_on_real_inotify(tmp_path):
    (tmp_path / "seed").mkdir()
    (tmp_path / "library").mkdir()
    a, b = tmp_path / "seed" / "a.flac", tmp_path / "seed" / "b.flac"
    a.write_bytes(b"a" * 1000)
    b.write_bytes(b"b" * 1000)
    os.link(b, tmp_path / "library" / "b.flac")
    q = queue.Queue()
    w = PayloadWatch(q)
    w.start()
    try:
        w.track("t1", {0: str(a), 1: str(b)}, hardlinked={1})
        w.track("t2", {0: str(a)})
        assert w.watch_count() == (1, 2)  # one folder watch shared by both torrents, one inode watch per file
        with open(a, "r+b") as fh:
            fh.write(b"Z")
        assert str(a) in _drain(q, {str(a)})
        assert w.lookup(str(a)) == {("t1", 0), ("t2", 0)}
        with open(tmp_path / "library" / "b.flac", "r+b") as fh:  # through the other link
            fh.write(b"Z")
        assert str(b) in _drain(q, {str(b)})
        os.link(a, tmp_path / "library" / "a.flac")  # a new hard link: only the inode's watch is told
        assert ("attrib", str(a)) in _drain_kinds(q, {("attrib", str(a))})
        tmp = tmp_path / "seed" / ".a.tmp"
        tmp.write_bytes(b"x" * 1000)
        os.replace(tmp, a)
        assert str(a) in _drain(q, {str(a)})
        w.rewatch("t1")  # the new inode at the path (the monitor does this after each check or heal)
        os.link(a, tmp_path / "library" / "a2.flac")
        assert ("attrib", str(a)) in _drain_kinds(q, {("attrib", str(a))})
        b.unlink()
        assert str(b) in _drain(q, {str(b)})
        w.untrack("t1")
        w.untrack("t2")
        assert w.watch_count() == (0, 0)
    finally:
        w.stop()


def test_every_promise_is_checked_by_the_invariants():
    """drift/invariants.violations (pure): each rule breaks where it should and nowhere else."""
    from companion.drift.invariants import RULES, violations

    seeding = {"state": "stalledUP", "progress": 1.0, "tags": "seedward:protected"}
    rows = [{"id": "ok", "protection": "protected"}, {"id": "stopped_by_us", "protection": "protected"},
            {"id": "missing", "protection": "protected"}, {"id": "half", "protection": "protected"},
            {"id": "orphan_heal", "protection": "healing"}, {"id": "forgotten", "protection": "damaged"},
            {"id": "alerting", "protection": "damaged"}, {"id": "wrong_tag", "protection": "damaged"},
            {"id": "linked", "protection": "protected"}, {"id": "user", "protection": "protected"},
            {"id": "retrying", "protection": "protected"}]
    live = {"ok": seeding, "stopped_by_us": dict(seeding, state="stoppedUP"),
            "missing": dict(seeding, state="missingFiles"), "half": dict(seeding, state="stalledDL", progress=0.8),
            "orphan_heal": dict(seeding, tags="seedward:healing"),
            "forgotten": dict(seeding, tags="seedward:damaged"), "alerting": dict(seeding, tags="seedward:damaged"),
            "wrong_tag": dict(seeding, tags="seedward:protected"), "linked": seeding,
            "user": dict(seeding, state="stoppedUP"), "retrying": seeding}
    holds = {"stopped_by_us": {"since": "T", "because": "drift", "steps": [], "settled": False}}
    work = {"checking": set(), "suspect": set(), "retries": {"retrying": {}}, "swarm": set()}
    found = {(v.torrent_id, v.rule) for v in violations(rows, live, holds, work, {"linked": ["a.flac"]},
                                                         lambda row: row["id"] not in ("alerting", "wrong_tag"))}
    assert found == {("stopped_by_us", "held-worked-on"), ("missing", "protected-seeding"),
                     ("half", "protected-seeding"), ("orphan_heal", "healing-running"),
                     ("forgotten", "damaged-handled"), ("wrong_tag", "tags-mirror"), ("linked", "tags-mirror"),
                     ("retrying", "protected-intact")}
    assert {rule for _, rule in found} == set(RULES)
    # qBittorrent not answering: only what needs no view of it
    blind = {(v.torrent_id, v.rule) for v in violations(rows, live, holds, work, {}, lambda row: True,
                                                         qbt_known=False)}
    assert blind == {("stopped_by_us", "held-worked-on"), ("orphan_heal", "healing-running"),
                     ("forgotten", "damaged-handled"), ("alerting", "damaged-handled"), ("wrong_tag", "damaged-handled"),
                     ("retrying", "protected-intact")}
