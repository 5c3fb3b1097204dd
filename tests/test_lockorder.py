"""The lock-order checker the whole suite runs under (tests/lockorder.py), on its own."""

import json
import os
import subprocess
import sys

from tests import lockorder



def test_two_locks_taken_in_both_orders_are_a_cycle_reported_once(tmp_path):
    rec = lockorder.Recorder()
    a = lockorder._Tracked(lockorder._Lock(), "companion/a.py:1")
    b = lockorder._TrackedRLock(lockorder._RLock(), "companion/b.py:2")
    old, lockorder.RECORDER = lockorder.RECORDER, rec
    try:
        with a, b, b:  # (b re-entered: no pair with itself)
            pass
        assert rec.cycles() == []
        with b:
            with a:
                pass
        cycles = rec.cycles()
        assert cycles == [["companion/a.py:1", "companion/b.py:2", "companion/a.py:1"]]
        assert "companion/b.py:2 taken while holding companion/a.py:1" in rec.explain(cycles[0])
        assert rec.cycles() == []  # said once
        rec.save(str(tmp_path))
        saved = json.loads((tmp_path / f"{os.getpid()}.json").read_text())
        assert sorted((x, y) for x, y, _ in saved["edges"]) == [("companion/a.py:1", "companion/b.py:2"),
                                                                ("companion/b.py:2", "companion/a.py:1")]
        other = lockorder.Recorder()
        other.load(str(tmp_path))
        assert other.cycles() == cycles
    finally:
        lockorder.RECORDER = old


def test_a_condition_waits_on_a_tracked_rlock_and_the_seedward_processes_are_checked():
    """threading.Condition over a tracked RLock still works; the started process tracks its locks."""
    code = ("import threading\n"
            "from tests import lockorder\n"
            "c = threading.Condition(lockorder._TrackedRLock(lockorder._RLock(), 'companion/x.py:1'))\n"
            "with c:\n    with c:\n        c.wait(0.01)\n"
            "import threading as t\n"
            "from companion.service.status import StatusBuilder\n"
            "print(type(t.Lock()).__name__, type(StatusBuilder(None)._lock).__name__, lockorder.RECORDER.held())\n")
    r = subprocess.run([sys.executable, "-c", code], cwd="/", env=dict(os.environ), capture_output=True, text=True,
                       timeout=60)  # (not from the checkout: its modules come through the PYTHONPATH alone)
    assert r.returncode == 0, r.stderr
    # a lock made in seedward's files is tracked in the started process (the sitecustomize conftest
    # puts on its PYTHONPATH), a plain one made elsewhere is not
    assert r.stdout.split() == ["lock", "_Tracked", "[]"]
    assert os.environ.get("SEEDWARD_TEST_LOCKORDER") and "lockorder_site" in os.environ.get("PYTHONPATH", "")
