"""Issue 12 item 4, as a property: `verify` and `verify --full` never disagree about a file, and
both say what is true (the file's bytes are its torrent's, or not). Seeded random changes, one or
two per round (in place, same bytes rewritten, truncated, extended, renamed over with or without a
change, replaced by a symlink, deleted), on a v1 torrent whose pieces span files (a bad piece
shared by two files) and on a hybrid one; each round is undone before the next. A full
verification that passes records the last-verified time. No qBittorrent: the catalog's own verbs."""

import json
import os
import random
import time

import pytest

from companion.catalog import Catalog
from companion.cli.verify_cmd import verify_full, verify_quick
from tests.helpers import make_torrent, seedward, write_payload

PIECE = 16384
FILES = {"01.flac": 3 * PIECE + 700, "02.flac": PIECE // 2 + 5, "03.nfo": 900, "sub/04.jpg": 2 * PIECE - 1}
ROUNDS = int(os.environ.get("INVARIANT_ROUNDS", "12"))


def change(path, kind: str, rnd: random.Random, outside) -> None:
    data = path.read_bytes()
    at = rnd.randrange(0, len(data))
    if kind == "flip":
        with open(path, "r+b") as fh:
            fh.seek(at)
            fh.write(bytes([data[at] ^ 0x5A]))
    elif kind == "same_bytes":  # rewritten with its own bytes: the stat changes, nothing else
        path.write_bytes(data)
    elif kind == "truncate":
        os.truncate(path, at)
    elif kind == "extend":
        with open(path, "ab") as fh:
            fh.write(b"TAG" + bytes(rnd.randrange(1, 200)))
    elif kind in ("rename_over", "rename_same"):
        new = bytearray(data)
        if kind == "rename_over":
            new[at] ^= 0x01
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(bytes(new))
        os.replace(tmp, path)
    elif kind == "symlink":  # the very bytes, outside: still not a seeded file (never read through)
        outside.write_bytes(data)
        path.unlink()
        path.symlink_to(outside)
    elif kind == "delete":
        path.unlink()


def verdicts(report: dict) -> dict[str, bool]:
    return {f["path"]: f["kind"] == "ok" for f in report["files"]}


@pytest.mark.parametrize("kind", ["v1", "hybrid"])
def test_quick_and_full_verification_agree_with_each_other_and_with_the_bytes(tmp_path, kind):
    home, data = tmp_path / "home", tmp_path / "data"
    write_payload(data / "Album", FILES, seed=3)
    original = {p: p.read_bytes() for p in (data / "Album").rglob("*") if p.is_file()}
    torrent = make_torrent(data / "Album", PIECE, kind, out=tmp_path / "a.torrent")
    added = seedward("catalog", "add", torrent, data, "--json", home=home)
    assert added.returncode == 0, added.stderr
    tid = json.loads(added.stdout)["id"]
    rnd = random.Random(f"{kind}-12")
    kinds = ["flip", "same_bytes", "truncate", "extend", "rename_over", "rename_same", "symlink", "delete"]
    cat = Catalog(home / "catalog.sqlite")
    try:
        for round_ in range(ROUNDS):
            hit = rnd.sample(sorted(original), rnd.choice((1, 2)))
            done = []
            for path in hit:
                what = rnd.choice(kinds)
                change(path, what, rnd, tmp_path / f"outside-{round_}-{path.name}")
                done.append(f"{what} {path.name}")
            truth = {f"Album/{p.relative_to(data / 'Album')}": not p.is_symlink() and p.is_file()
                     and p.read_bytes() == want for p, want in original.items()}
            quick = verify_quick(cat, tid, record=False)
            full = verify_full(cat, tid, record=False)
            assert verdicts(quick) == verdicts(full) == truth, (round_, done, quick["files"], full["files"])
            assert quick["ok"] == full["ok"] == all(truth.values()), (round_, done)
            for path, want in original.items():  # undone: the next round starts from the torrent's bytes
                if path.is_symlink() or path.exists():
                    path.unlink()
                path.write_bytes(want)

        before = cat.get_torrent(tid)["last_verified"]
        assert verify_quick(cat, tid)["ok"]
        time.sleep(0.01)  # (the catalog's times are in milliseconds)
        assert verify_full(cat, tid)["ok"]
        after = cat.get_torrent(tid)["last_verified"]
        assert before and after > before  # a full verification that passes is recorded
    finally:
        cat.close()
