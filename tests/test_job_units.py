"""Pure parts of AI jobs: the provenance schema (and its copy in the README), file scope, params; and the
sandbox fallback when bwrap is not there (a real job run with bwrap out of PATH)."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from companion import provenance
from companion.errors import BadInput
from companion.job import parse_params, select_files
from companion.sandbox import SandboxUnavailable, choose_mode
from companion.torrent import load_torrent
from tests.helpers import make_torrent, seedward, write_payload

ROOT = Path(__file__).resolve().parent.parent


def good_doc() -> dict:
    return {
        "schema": "seedward.provenance/1", "job_id": "0123456789abcdef",
        "output": {"path": "a.mkv", "size": 3, "sha256": "a" * 64},
        "originals": [{"path": "show/a.mkv", "size": 5, "sha256": "b" * 64}],
        "original_torrent": {"id": "c" * 40, "name": "show", "info_hash_v1": "c" * 40, "info_hash_v2": None},
        "preflight_snapshot": None, "model": {"name": "m", "version": "1", "digest": None},
        "prompt": None, "parameters": {"k": "v"}, "operator": "alice", "command": ["run"], "sandbox": "bwrap",
        "started_at": "2026-01-01T00:00:00.000+00:00", "ended_at": "2026-01-01T00:00:01.000+00:00",
        "exit_code": 0, "seedward_version": "0.1.0",
    }


def test_schema_accepts_a_sidecar_and_names_what_is_wrong():
    provenance.validate(good_doc())
    for path, value, field in ((("output", "sha256"), "xyz", "output/sha256"), (("model", "version"), "", "model/version"),
                               (("sandbox",), "docker", "sandbox"), (("started_at",), "yesterday", "started_at")):
        doc = good_doc()
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(provenance.ProvenanceInvalid, match=field):
            provenance.validate(doc, "a.mkv")
    doc = good_doc()
    doc["originals"] = []
    with pytest.raises(provenance.ProvenanceInvalid):
        provenance.validate(doc)


def test_readme_shows_the_schema_file():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- section:jobs -->")[1].split("<!-- /section:jobs -->")[0]
    block = section.split("```json\n")[1].split("```")[0]
    assert json.loads(block) == provenance.schema()


def test_scope_globs_and_params(tmp_path):
    write_payload(tmp_path / "show", {"s1/e1.mkv": 100, "s1/e1.srt": 10, "s2/e1.mkv": 100, "empty.txt": b""})
    meta = load_torrent(make_torrent(tmp_path / "show", kind="v1"))
    assert sorted(f.path for f in select_files(meta, [])) == ["show/s1/e1.mkv", "show/s1/e1.srt", "show/s2/e1.mkv"]
    assert sorted(f.path for f in select_files(meta, ["*.mkv"])) == ["show/s1/e1.mkv", "show/s2/e1.mkv"]
    assert sorted(f.path for f in select_files(meta, ["s1/*"])) == ["show/s1/e1.mkv", "show/s1/e1.srt"]
    with pytest.raises(BadInput, match=r"\*\.avi"):
        select_files(meta, ["*.avi"])
    assert parse_params(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(BadInput):
        parse_params(["=1"])


def test_sandbox_modes_without_bwrap(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap here
    mode, warning = choose_mode("auto")
    assert mode == "copy" and "bwrap is not installed" in warning
    with pytest.raises(SandboxUnavailable):
        choose_mode("bwrap")
    with pytest.raises(BadInput):
        choose_mode("docker")


def test_job_without_bwrap_warns_and_uses_a_private_copy(tmp_path):
    seed = tmp_path / "seed"
    write_payload(seed / "show", {"ep.bin": 20_000, "ep.nfo": 300}, seed=3)
    torrent = make_torrent(seed / "show", kind="v2", out=tmp_path / "show.torrent")
    home = tmp_path / "home"
    tid = json.loads(seedward("catalog", "add", torrent, seed, "--json", home=home).stdout)["id"]
    original = seed / "show" / "ep.bin"
    mode_before = original.stat().st_mode
    script = ("import os, pathlib; i = pathlib.Path(os.environ['SEEDWARD_INPUT'], 'show', 'ep.bin'); "
              "w = os.access(i, os.W_OK); o = pathlib.Path(os.environ['SEEDWARD_OUTPUT']); "
              "(o / 'copy.bin').write_bytes(i.read_bytes()); (o / 'writable.txt').write_text(str(w)); "
              f"os.link({str(original)!r}, o / 'linked.bin'); os.symlink({str(original)!r}, o / 'sym.bin')")
    bin_dir = tmp_path / "bin"  # git (for the manifests repo) but no bwrap
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    env = {"PATH": str(bin_dir)}
    proc = seedward("job", "run", "--torrent", tid, "--model", "m", "--model-version", "1", "--json", "--",
                    sys.executable, "-c", script, home=home, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "WITHOUT a sandbox" in proc.stderr and "bwrap is not installed" in proc.stderr
    out = {Path(o["path"]).name: Path(o["path"]) for o in json.loads(proc.stdout)["outputs"]}
    assert out["copy.bin"].read_bytes() == (seed / "show" / "ep.bin").read_bytes()
    # A hard link to an original (or a symlink) is never collected, so never chmod-ed nor published.
    assert sorted(out) == ["copy.bin", "writable.txt"] and "linked.bin" in proc.stderr
    assert original.stat().st_mode == mode_before
    if os.geteuid() != 0:  # root ignores file modes; the originals are verified afterwards either way
        assert out["writable.txt"].read_text() == "False"
    show = json.loads(seedward("job", "show", json.loads(proc.stdout)["id"], "--json", home=home).stdout)
    assert show["sandbox"] == "copy" and show["state"] == "done"
    assert not list((home / "jobs").glob("*/scratch/input"))  # the copy is gone
