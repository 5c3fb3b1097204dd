"""companion.loops: the one helper for periodic threads (it must neither spin nor die)."""

import threading

from companion.loops import Backoff, Loop
from tests.helpers import wait_until


def test_a_loop_steps_wakes_and_stops():
    seen = []
    loop = Loop("t-steps", lambda: seen.append(1), every=600.0).start()
    wait_until(lambda: len(seen) == 1, 10, what="the first step")
    loop.wake()  # no 600 s wait: the next step runs now
    wait_until(lambda: len(seen) == 2, 10, what="the woken step")
    loop.stop()
    assert not loop.is_alive()


def test_a_failing_step_backs_off_and_the_loop_lives_on():
    calls, waits = [], []

    class Recording(Backoff):
        def next(self):
            waits.append(super().next())
            return 0.0  # the test does not wait the delays it records

    def step():
        calls.append(1)
        if len(calls) < 4:
            raise RuntimeError("boom")

    loop = Loop("t-fail", step, every=600.0, backoff=Recording(1.0, 8.0, jitter=0.0)).start()
    wait_until(lambda: len(calls) == 4, 10, what="three failures and a success")
    loop.stop()
    assert waits == [1.0, 2.0, 4.0] and loop.backoff.failures == 0  # reset by the success


def test_the_step_decides_its_next_wait_and_a_shared_wake_reaches_every_loop():
    wake, stopping = threading.Event(), threading.Event()
    counts = {"a": 0, "b": 0}

    def step(name):
        counts[name] += 1
        return None  # wait `every` (long), until woken

    loops = [Loop(f"t-{n}", lambda n=n: step(n), 600.0, wake=wake, stopping=stopping).start() for n in counts]
    wait_until(lambda: all(counts.values()), 10, what="both first steps")
    stopping.set()
    wake.set()  # the shared event ends both waits; the stopping event ends both loops
    for loop in loops:
        loop.join(10)
        assert not loop.is_alive()
