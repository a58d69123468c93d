"""How long a thread waiting for a message polls its socket before it sleeps.

Polling (spinning) saves the wake-up of a sleeping thread: tens of microseconds on the 2-core
VM we measure on, hundreds when its virtual CPU had gone idle. It pays only while the CPU is
otherwise free. When other processes want it, a spinning thread takes the CPU the other end of
the round trip needs, and the scheduler, which favours a thread that wakes from sleep over one
that has been running, lets the spinner wait a whole time slice (milliseconds) behind a busy
process. Measured with one busy process per core: 310 µs a warm round trip with both ends
spinning, about 100 µs with both sleeping.

So a `Spin` polls only while both of these hold:

- the last wait was short (the message came within the spin's budget): an idle thread spins
  once after its last message and then sleeps, using no CPU at all;
- nothing preempted it lately: a poll loop that finds a gap between two of its polls was taken
  off the CPU for other work, so it stops at once (and the thread sleeps). After STRIKES
  such spins in a row (a clean spin, one that got its message or ran its course, starts the
  count again) spinning stays off for a pause that doubles, up to MAX_PAUSE, while the CPU
  stays contested, and starts short again once a spin is clean. Measured on the 2-core VM:
  pausing at the first preemption did best under one busy process per core (STRIKES = 1),
  and a first pause of 2 ms keeps a short task that ran meanwhile (a kernel thread, this
  process's journal flush) from turning spinning off for long; a CPU free again is found
  within a quarter of a second.
"""

from __future__ import annotations

PREEMPTED_GAP = 100e-6  # seconds between two polls: longer means another task had the CPU
STRIKES = 1  # preempted spins in a row that stop spinning for a while
FIRST_PAUSE = 0.002  # seconds without spinning, the first time: a short task costs little
MAX_PAUSE = 0.25  # short enough to find the CPU free again soon after a busy spell


class Spin:
    """The spinning policy of one waiting thread (not thread-safe: one waiter uses it)."""

    __slots__ = ("limit", "_resume_at", "_pause", "_last_wait", "_strikes")

    def __init__(self, limit: float) -> None:
        self.limit = limit  # seconds: the longest spin
        self._resume_at = 0.0  # time.monotonic() before which this thread does not spin
        self._pause = FIRST_PAUSE
        self._last_wait = 0.0  # seconds the last wait took, spinning or sleeping
        self._strikes = 0  # spins preempted since the last clean one

    def budget(self, now: float) -> float:
        """Seconds to poll before sleeping, for a wait that starts at `now` (monotonic)."""
        if now < self._resume_at or self._last_wait > self.limit:
            return 0.0
        return self.limit

    def waited(self, seconds: float) -> None:
        """Record how long a wait took, however it was spent."""
        self._last_wait = seconds

    def preempted(self, now: float) -> None:
        """The poll loop lost the CPU. After STRIKES times in a row: no spinning for a while,
        longer each time the CPU is still contested when spinning resumes."""
        self._strikes += 1
        if self._strikes >= STRIKES:
            self._resume_at = now + self._pause
            self._pause = min(2 * self._pause, MAX_PAUSE)

    def undisturbed(self) -> None:
        """A spin ran its course without losing the CPU: the CPU is free again."""
        self._strikes = 0
        self._pause = FIRST_PAUSE


__all__ = ["FIRST_PAUSE", "MAX_PAUSE", "PREEMPTED_GAP", "STRIKES", "Spin"]
