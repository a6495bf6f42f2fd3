"""Small, allocation-free counters for the diagnostics: event rates and latency percentiles."""
from __future__ import annotations

from collections import deque

import numpy as np


class RateMeter:
    """Events per second over a sliding time window."""

    def __init__(self, window_s: float = 2.0):
        self.window_s = window_s
        self._times = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()


class LatencyWindow:
    """The last `size` samples (ms); percentiles on demand."""

    def __init__(self, size: int = 1000):
        self._buf = np.zeros(size, dtype=np.float64)
        self._n = 0
        self._i = 0

    def add(self, ms: float) -> None:
        self._buf[self._i] = ms
        self._i = (self._i + 1) % self._buf.size
        self._n = min(self._n + 1, self._buf.size)

    def percentile(self, q: float) -> float:
        if self._n == 0:
            return float('nan')
        return float(np.percentile(self._buf[:self._n], q))

    def __len__(self) -> int:
        return self._n


class SequenceGaps:
    """Messages that a topic's publishers sent and that never reached the callback.

    From each publisher's publication sequence numbers (rclpy's MessageInfo, Iron and later): a
    jump from n to n + k + 1 is k messages dropped in transport or overwritten in the
    subscription's queue while the callback was late.  A publisher's first message, or a number
    that falls back (the publisher restarted), starts its count afresh.
    """

    MAX_PUBLISHERS = 64   # publishers come and go: remember the newest ones only

    def __init__(self):
        self._last = {}
        self.lost = 0
        self.counting = False   # sequence numbers seen (an rmw may not give them)
        self.named = False      # publishers told apart (rclpy gives their GIDs: Kilted)

    def add(self, publisher, number) -> int:
        """Record message `number` from `publisher` (None: unnamed); return how many it skipped."""
        if number is None:
            return 0
        self.counting = True
        self.named = self.named or publisher is not None
        prev = self._last.pop(publisher, None)   # re-inserted last: the newest stay
        self._last[publisher] = number
        if len(self._last) > self.MAX_PUBLISHERS:
            del self._last[next(iter(self._last))]
        if prev is None or number <= prev:
            return 0
        self.lost += number - prev - 1
        return number - prev - 1
