"""Counts over a sliding time window, in a fixed number of slots (no timestamp kept per event)."""

from __future__ import annotations

from collections import deque

from flotilla.clock import Clock


class SlidingCounts:
    """Two running totals (say calls and failures) over the last ``window`` seconds.

    The window is cut into ``slots`` equal slots; a whole slot expires at once, so the window is
    exact to one slot's width. Not locked: the owner (breaker, retry budget) holds its own lock.
    """

    def __init__(self, window: float, clock: Clock, slots: int = 10) -> None:
        self._width = window / slots
        self._slots = slots
        self._clock = clock
        self._ring: deque[list[int]] = deque()  # [slot index, first, second], oldest first
        self.first = 0
        self.second = 0

    def add(self, first: int = 0, second: int = 0) -> None:
        slot = self._current()
        slot[1] += first
        slot[2] += second
        self.first += first
        self.second += second

    def totals(self) -> tuple[int, int]:
        self._current()
        return self.first, self.second

    def clear(self) -> None:
        self._ring.clear()
        self.first = self.second = 0

    def _current(self) -> list[int]:
        index = int(self._clock.monotonic() / self._width)
        ring = self._ring
        while ring and ring[0][0] <= index - self._slots:
            _, first, second = ring.popleft()
            self.first -= first
            self.second -= second
        if not ring or ring[-1][0] != index:
            ring.append([index, 0, 0])
        return ring[-1]
