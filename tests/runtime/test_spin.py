"""Waiting for a message: spin only while it pays, never while idle or while the CPU is contested."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from dispatch_kernel.runtime.channel import Channel
from dispatch_kernel.runtime.spin import FIRST_PAUSE, STRIKES, Spin


def _cpu_ticks(pid: int) -> int:
    """User + system clock ticks of every thread of `pid` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def test_an_idle_worker_uses_no_cpu(client):
    def pid():
        import os

        return os.getpid()

    fn = client.deploy(pid, min_workers=1)
    for _ in range(200):  # answers in quick succession: the worker is in its spinning mood
        worker = fn()
    time.sleep(0.1)
    before = _cpu_ticks(worker)
    time.sleep(1.5)
    assert _cpu_ticks(worker) == before
    assert fn() == worker  # and it still answers at once from its sleep


def test_a_spin_stops_and_pauses_when_another_process_takes_the_cpu():
    cpu = sorted(os.sched_getaffinity(0))[0]
    hog = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\n"
                            "while True: pass"])
    ours, theirs = socket.socketpair()
    mask = os.sched_getaffinity(0)
    spin = Spin(0.5)  # far longer than any time slice: the hog must get the CPU meanwhile
    try:
        time.sleep(0.2)  # the hog is running, on that CPU
        os.sched_setaffinity(0, {cpu})  # this thread now shares its CPU with the hog
        threading.Timer(1.0, lambda: Channel(theirs).send(42)).start()
        started, cpu_before = time.monotonic(), time.thread_time()
        assert Channel(ours).recv(time.monotonic() + 10, spin) == 42
        now, cpu_spent = time.monotonic(), time.thread_time() - cpu_before
    finally:
        os.sched_setaffinity(0, mask)
        hog.kill()
        hog.wait()
        ours.close()
        theirs.close()
    assert now - started >= 0.9  # the message came when it was sent, not before
    # Preempted, it slept rather than poll on for its 0.5 s (which would have cost about half
    # of that in CPU time, sharing the CPU with the hog).
    assert cpu_spent < 0.05
    assert spin.budget(now) == 0.0  # the wait was long: the next one sleeps at once


def test_a_spin_polls_only_after_short_waits_and_not_during_a_pause():
    spin = Spin(0.002)
    assert spin.budget(0.0) == 0.002
    spin.waited(0.010)  # a long wait: the next message is unlikely to come soon
    assert spin.budget(1.0) == 0.0
    spin.waited(0.0001)
    assert spin.budget(1.0) == 0.002
    for _ in range(STRIKES - 1):  # a short task took the CPU now and then: spinning goes on
        spin.preempted(1.0)
        assert spin.budget(1.0) == 0.002
    spin.undisturbed()
    for _ in range(STRIKES - 1):  # a clean spin between them started the count again
        spin.preempted(1.0)
    assert spin.budget(1.0) == 0.002
    spin.preempted(1.0)  # STRIKES in a row: something busy shares the CPU
    assert spin.budget(1.0 + FIRST_PAUSE / 2) == 0.0
    assert spin.budget(1.0 + FIRST_PAUSE) == 0.002
    spin.preempted(2.0)  # still contested when spinning resumed: the pause doubles
    assert spin.budget(2.0 + FIRST_PAUSE * 1.5) == 0.0
    spin.undisturbed()
    for _ in range(STRIKES):  # after a clean spin, the pause starts short again
        spin.preempted(3.0)
    assert spin.budget(3.0 + FIRST_PAUSE) == 0.002


@pytest.mark.parametrize("polite", [False, True])
def test_a_message_that_comes_during_the_spin_is_read_whole(polite):
    ours, theirs = socket.socketpair()
    try:
        big = os.urandom(1 << 20)
        threading.Timer(0.0005, lambda: Channel(theirs).send(big)).start()
        assert Channel(ours).recv(time.monotonic() + 10, Spin(0.05), polite) == big
    finally:
        ours.close()
        theirs.close()
