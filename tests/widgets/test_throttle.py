"""The throttle behind live widgets: coalesces pokes, acts at once after quiet, retires when idle."""

import logging
import threading
import time

from dispatch_kernel.widgets._throttle import Throttle

from .helpers import eventually


def test_a_burst_of_pokes_costs_a_few_calls_and_the_first_acts_at_once():
    calls = []
    throttle = Throttle(lambda: calls.append(time.monotonic()), interval=0.5)
    try:
        first = time.monotonic()
        throttle.poke()
        assert eventually(lambda: len(calls) == 1, timeout=2)
        assert calls[0] - first < 0.4  # not made to wait out an interval

        started = time.monotonic()
        while time.monotonic() - started < 1.2:
            throttle.poke()
            time.sleep(0.0001)
        assert eventually(lambda: not throttle._wake.is_set(), timeout=2)
        time.sleep(0.1)
        # About 1.2 s / 0.5 s, plus the trailing call after the last poke; never closer than 0.5 s.
        assert 2 <= len(calls) <= 1 + 1.2 / 0.5 + 2
        assert min(b - a for a, b in zip(calls, calls[1:])) >= 0.49
    finally:
        throttle.stop()


def test_the_thread_retires_when_idle_and_comes_back_on_a_poke():
    calls = []
    throttle = Throttle(lambda: calls.append(1), interval=0.01, idle=0.1)
    throttle.poke()
    assert eventually(lambda: calls == [1])
    assert eventually(lambda: not throttle.running, timeout=2)

    throttle.poke()
    assert eventually(lambda: calls == [1, 1])
    throttle.stop()
    assert not throttle.running
    throttle.poke()  # after stop: nothing starts
    time.sleep(0.05)
    assert calls == [1, 1] and not throttle.running


def test_a_failing_action_is_logged_and_later_pokes_still_act(caplog):
    calls = []

    def action():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("render failed")

    throttle = Throttle(action, interval=0.01, name="test-throttle")
    try:
        with caplog.at_level(logging.ERROR, logger="dispatch_kernel.widgets._throttle"):
            throttle.poke()
            assert eventually(lambda: len(calls) == 1)
            throttle.poke()
            assert eventually(lambda: len(calls) == 2)
        assert "test-throttle: a throttled update failed" in caplog.text
    finally:
        throttle.stop()


def test_no_poke_is_left_unanswered_while_the_thread_retires_and_restarts():
    # idle is shorter than the gaps between pokes: the thread keeps retiring and restarting.
    calls: list[float] = []
    pokes: list[float] = []
    throttle = Throttle(lambda: calls.append(time.monotonic()), interval=0.001, idle=0.002)

    def poker():
        for _ in range(100):
            pokes.append(time.monotonic())
            throttle.poke()
            time.sleep(0.003)

    threads = [threading.Thread(target=poker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert eventually(lambda: bool(calls) and calls[-1] >= max(pokes), timeout=2)
    finally:
        throttle.stop()
