"""Half-open intervals [start, end) over numbers.

Half-open intervals tile without overlap: [1, 3) and [3, 5) touch but share
no point, so splitting and joining never counts a boundary twice.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Interval:
    """The numbers x with start <= x < end. Empty when start == end."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"start must be <= end, got [{self.start}, {self.end})")

    @property
    def length(self) -> float:
        return self.end - self.start

    @property
    def is_empty(self) -> bool:
        return self.start == self.end

    def __contains__(self, x: object) -> bool:
        if not isinstance(x, (int, float)):
            return False
        return self.start <= x < self.end

    def overlaps(self, other: Interval) -> bool:
        """True when the two intervals share at least one point."""
        return self.start < other.end and other.start < self.end

    def touches(self, other: Interval) -> bool:
        """True when the intervals overlap or are adjacent (one ends where the other starts)."""
        return self.start <= other.end and other.start <= self.end

    def intersection(self, other: Interval) -> Interval | None:
        """The common part, or None when the intervals do not overlap."""
        if not self.overlaps(other):
            return None
        return Interval(max(self.start, other.start), min(self.end, other.end))

    def hull(self, other: Interval) -> Interval:
        """The smallest interval covering both."""
        return Interval(min(self.start, other.start), max(self.end, other.end))

    def shift(self, offset: float) -> Interval:
        return Interval(self.start + offset, self.end + offset)

    def split(self, at: float) -> tuple[Interval, Interval]:
        """Cut into [start, at) and [at, end); `at` must lie within the interval's bounds."""
        if not self.start <= at <= self.end:
            raise ValueError(f"{at} is outside [{self.start}, {self.end})")
        return Interval(self.start, at), Interval(at, self.end)
