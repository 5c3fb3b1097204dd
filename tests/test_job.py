"""`seedward job run|show`, `seedward jobs`: real commands, real bwrap, real store, real manifests repo."""

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import git
import pytest

from companion import provenance
from companion.sandbox import probe_bwrap
from tests.helpers import flip_byte, make_torrent, seedward, wait_until, write_payload

needs_bwrap = pytest.mark.skipif(probe_bwrap() is not None, reason=f"bwrap unusable here: {probe_bwrap()}")

TRANSFORM = textwrap.dedent("""
    import json, os, pathlib, sys
    inp = pathlib.Path(os.environ["SEEDWARD_INPUT"])
    out = pathlib.Path(os.environ["SEEDWARD_OUTPUT"])
    seed = pathlib.Path(sys.argv[1])
    attempts = {}
    for target in (seed / "show" / "ep1.bin", inp / "show" / "ep1.bin", seed / "show" / "new.bin"):
        try:
            with open(target, "r+b" if target.exists() else "wb") as fh:
                fh.write(b"X")
            attempts[str(target)] = "written"
        except OSError as exc:
            attempts[str(target)] = exc.errno
    for f in sorted((inp / "show").iterdir()):
        (out / "rev").mkdir(exist_ok=True)
        (out / "rev" / (f.name + ".rev")).write_bytes(f.read_bytes()[::-1])
    (out / "attempts.json").write_text(json.dumps(attempts, sort_keys=True))
    print("transformed", os.environ["SEEDWARD_PROMPT"])
""")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def cataloged(tmp_path):
    """A cataloged hybrid torrent `show` (two files) under tmp_path/seed; the state home tmp_path/home."""
    seed = tmp_path / "seed"
    write_payload(seed / "show", {"ep1.bin": 50_000, "ep2.bin": 33_333}, seed=6)
    torrent = make_torrent(seed / "show", piece_size=16384, kind="hybrid", out=tmp_path / "show.torrent")
    home = tmp_path / "home"
    proc = seedward("catalog", "add", torrent, seed, "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    before = {p.name: sha256(p) for p in (seed / "show").iterdir()}
    return {"home": home, "seed": seed, "id": json.loads(proc.stdout)["id"], "before": before, "tmp": tmp_path}


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(textwrap.dedent(text))


def run_job(c, *command, extra=(), check_json=True):
    proc = seedward("job", "run", "--torrent", c["id"][:10], "--model", "reverser", "--model-version", "2.1",
                    "--model-digest", "sha256:" + "ab" * 32, "--prompt", "reverse every file",
                    "--param", "direction=backwards", "--param", "passes=1", "--operator", "alice", *extra, "--json",
                    "--", *command, home=c["home"])
    return proc, (json.loads(proc.stdout) if check_json else None)


def originals_intact(c) -> bool:
    return {p.name: sha256(p) for p in (c["seed"] / "show").iterdir()} == c["before"]


@needs_bwrap
def test_transform_in_bwrap_outputs_and_provenance(cataloged):
    c = cataloged
    script = c["tmp"] / "transform.py"
    script.write_text(TRANSFORM)
    proc, out = run_job(c, sys.executable, script, c["seed"])
    assert proc.returncode == 0, proc.stderr
    assert set(out) == {"id", "state", "outputs"} and out["state"] == "done"
    # The command could write neither the seeding path nor its inputs: read-only file system.
    outputs = {Path(o["path"]).name: o for o in out["outputs"]}
    attempts = json.loads(Path(outputs["attempts.json"]["path"]).read_text())
    assert sorted(attempts.values()) == [errno.EROFS] * 3, attempts
    assert originals_intact(c) and not (c["seed"] / "show" / "new.bin").exists()
    assert "transformed reverse every file" in proc.stderr  # with --json the command's stdout goes to stderr

    # Outputs: the right bytes, the SHA-256 the JSON names.
    assert sorted(outputs) == ["attempts.json", "ep1.bin.rev", "ep2.bin.rev"]
    for name in ("ep1.bin", "ep2.bin"):
        o = outputs[name + ".rev"]
        assert Path(o["path"]).read_bytes() == (c["seed"] / "show" / name).read_bytes()[::-1]
        assert o["sha256"] == sha256(o["path"])

    # One sidecar per output, valid against the published schema, naming originals, model and run.
    content = Path(outputs["ep1.bin.rev"]["path"]).parents[2]
    for o in out["outputs"]:
        rel = Path(o["path"]).relative_to(content / "output").as_posix()
        doc = json.loads((content / "provenance" / f"{rel}.provenance.json").read_text())
        provenance.validate(doc)
        assert doc["job_id"] == out["id"] and doc["output"] == {"path": rel, "sha256": o["sha256"],
                                                                "size": Path(o["path"]).stat().st_size}
        assert {x["path"]: x["sha256"] for x in doc["originals"]} == {
            f"show/{k}": v for k, v in c["before"].items()}
        assert doc["model"] == {"name": "reverser", "version": "2.1", "digest": "sha256:" + "ab" * 32}
        assert doc["prompt"] == "reverse every file" and doc["parameters"] == {"direction": "backwards", "passes": "1"}
        assert doc["operator"] == "alice" and doc["exit_code"] == 0 and doc["sandbox"] == "bwrap"
        assert doc["original_torrent"]["id"] == c["id"] and doc["started_at"] <= doc["ended_at"]
        assert doc["preflight_snapshot"]

    # Recorded: job show, jobs (newest first), the manifests repo (tag job-<id>), the store.
    show = json.loads(seedward("job", "show", out["id"][:8], "--json", home=c["home"]).stdout)
    assert show["state"] == "done" and show["exit_code"] == 0 and not show["tainted"]
    assert sorted(o["sha256"] for o in show["outputs"]) == sorted(o["sha256"] for o in out["outputs"])
    repo = git.Repo(c["home"] / "manifests")
    tagged = repo.tag(f"job-{out['id']}").commit
    assert f"jobs/{out['id']}/provenance/rev/ep1.bin.rev.provenance.json" in [i.path for i in tagged.tree.traverse()]
    snaps = json.loads(seedward("snapshots", "--json", home=c["home"]).stdout)
    assert show["preflight_snapshot"] in json.dumps(snaps)

    second, out2 = run_job(c, sys.executable, "-c", "pass")
    assert second.returncode == 0 and out2["outputs"] == []
    listed = json.loads(seedward("jobs", "--json", home=c["home"]).stdout)["jobs"]
    assert [j["id"] for j in listed][:2] == [out2["id"], out["id"]]
    assert all({"id", "state"} <= set(j) for j in listed)


@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_crashing_command_leaves_originals_and_records_state(cataloged, sandbox):
    c = cataloged
    write_config(c["home"], f'[jobs]\nsandbox = "{sandbox}"\n')  # "none": what a host without bwrap does
    crash = "import os, pathlib; pathlib.Path(os.environ['SEEDWARD_OUTPUT'], 'half').write_text('x'); raise SystemExit(3)"
    proc, out = run_job(c, sys.executable, "-c", crash)
    assert proc.returncode == 1
    assert out["state"] == "failed" and out["outputs"] == []
    assert "exited with 3" in proc.stderr
    show = json.loads(seedward("job", "show", out["id"], "--json", home=c["home"]).stdout)
    assert show["exit_code"] == 3 and show["outputs"] == [] and show["ended_at"]
    assert originals_intact(c)
    assert seedward("publish", out["id"], home=c["home"]).returncode == 2  # only a done job is published
    # A command that cannot start is a failed job too, and --json still prints its object.
    proc, out = run_job(c, "/nonexistent/model-runner")
    assert proc.returncode == 1 and out["state"] == "failed" and originals_intact(c)
    assert out["id"] and "model-runner" in (out["error"] + proc.stderr)
    # So is seedward's own error once the job is recorded (here: the sidecars cannot be committed).
    (c["home"] / "manifests" / "jobs").write_text("a file where the jobs folder goes")
    ok = "import os, pathlib; pathlib.Path(os.environ['SEEDWARD_OUTPUT'], 'out.txt').write_text('x')"
    proc, out = run_job(c, sys.executable, "-c", ok)
    assert proc.returncode == 2 and out["state"] == "failed" and out["id"] and "manifests" in out["error"]
    assert proc.stderr.strip().splitlines()[-1].startswith("seedward: job")
    # And an error before any job exists: still one object, no id.
    proc, out = run_job(c, "true", extra=("--param", "novalue"))
    assert proc.returncode == 2 and out == {"id": None, "state": "not_started", "outputs": [],
                                            "error": out["error"]} and "KEY=VALUE" in out["error"]


def test_drifted_payload_is_refused_before_the_command_runs(cataloged):
    c = cataloged
    flip_byte(c["seed"] / "show" / "ep2.bin", 100)
    marker = c["tmp"] / "ran"
    proc, out = run_job(c, sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert proc.returncode == 1 and out["state"] == "refused"
    assert "does not match its torrent" in proc.stderr
    assert not marker.exists()
    # The preflight marked it damaged: the next job is refused at once, as drifted.
    proc, out = run_job(c, sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert out["state"] == "refused" and "drifted (damaged)" in proc.stderr and not marker.exists()


def test_unsandboxed_fallback_heals_a_write_to_the_original(cataloged):
    c = cataloged
    write_config(c["home"], '[jobs]\nsandbox = "none"\n')
    target = c["seed"] / "show" / "ep1.bin"
    vandal = f"open({str(target)!r}, 'r+b').write(b'AI WAS HERE'); print('done')"
    proc, out = run_job(c, sys.executable, "-c", vandal)
    assert "WITHOUT a sandbox" in proc.stderr
    assert proc.returncode == 1 and out["state"] == "tainted"
    assert originals_intact(c)  # healed from the preflight snapshot
    show = json.loads(seedward("job", "show", out["id"], "--json", home=c["home"]).stdout)
    assert show["tainted"] and "healed from the preflight snapshot" in show["error"]
    assert show["sandbox"] == "copy"


def test_interrupted_job_is_recorded_and_the_command_ended(cataloged):
    c = cataloged
    env = dict(os.environ, SEEDWARD_HOME=str(c["home"]))
    exe = Path(sys.executable).parent / "seedward"
    sleeper = "import os, time, pathlib; pathlib.Path(os.environ['SEEDWARD_OUTPUT'], 'started').touch(); time.sleep(120)"
    cmd = [str(exe), "job", "run", "--torrent", c["id"], "--model", "m", "--model-version", "1", "--json", "--",
           sys.executable, "-c", sleeper]
    if probe_bwrap() is not None:
        write_config(c["home"], '[jobs]\nsandbox = "none"\n')
    env["PYTHONFAULTHANDLER"] = "1"  # a hang below is shown with every thread's stack
    # Ctrl-C as a terminal's foreground process gets it: a suite started in the background (`cmd &` in
    # a script, nohup) ignores SIGINT, and an interpreter started ignoring it never raises KeyboardInterrupt.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_until(lambda: list((c["home"] / "jobs").glob("*/*/output/started")), timeout=60,
                   what="the job's command to start")
        signals = [line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if line.startswith("Sig")]
        proc.send_signal(signal.SIGINT)
        try:
            stdout, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _out, err = proc.communicate(timeout=30)
            pytest.fail(f"seedward job run did not end 60 s after SIGINT; its signals {signals}; stderr:\n{err[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    out = json.loads(stdout)
    assert out["state"] == "interrupted"
    assert json.loads(seedward("jobs", "--json", home=c["home"]).stdout)["jobs"][0]["state"] == "interrupted"
    assert originals_intact(c)


def test_bad_input_is_one_line_exit_2(cataloged):
    c = cataloged
    proc = seedward("job", "run", "--torrent", c["id"], "--model", "m", "--model-version", "1", "--files", "*.nope",
                    "--", "true", home=c["home"])
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "*.nope" in proc.stderr
    proc = seedward("job", "run", "--torrent", c["id"], "--model", "m", "--model-version", "1", "--param", "novalue",
                    "--", "true", home=c["home"])
    assert proc.returncode == 2 and "KEY=VALUE" in proc.stderr
    assert json.loads(seedward("jobs", "--json", home=c["home"]).stdout)["jobs"] == []


def test_killed_seedward_is_recovered_and_the_originals_healed(cataloged):
    c = cataloged
    write_config(c["home"], '[jobs]\nsandbox = "none"\n')  # the fallback: the command could reach the seed
    target = c["seed"] / "show" / "ep2.bin"
    vandal = (f"import os, time, pathlib; open({str(target)!r}, 'r+b').write(b'HALF-DONE'); "
              "pathlib.Path(os.environ['SEEDWARD_OUTPUT'], 'started').touch(); time.sleep(120)")
    env = dict(os.environ, SEEDWARD_HOME=str(c["home"]))
    exe = Path(sys.executable).parent / "seedward"
    proc = subprocess.Popen([str(exe), "job", "run", "--torrent", c["id"], "--model", "m", "--model-version", "1",
                             "--", sys.executable, "-c", vandal], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: list((c["home"] / "jobs").glob("*/*/output/started")), 60, 0.1, "the command to start")
        proc.kill()  # kill -9: no chance to record anything
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not originals_intact(c)
    jobs = json.loads(seedward("jobs", "--json", home=c["home"]).stdout)["jobs"]
    assert jobs[0]["state"] == "tainted" and jobs[0]["tainted"]
    assert originals_intact(c)  # healed from the preflight snapshot
    show = json.loads(seedward("job", "show", jobs[0]["id"], "--json", home=c["home"]).stdout)
    assert "recovered" in show["error"] or "healed from the preflight snapshot" in show["error"]
