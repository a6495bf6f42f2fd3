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
