"""A set of numbers stored as sorted, disjoint, non-adjacent intervals."""

from __future__ import annotations

from typing import Iterable, Iterator, Union

from rangeset.interval import Interval

IntervalLike = Union[Interval, "tuple[float, float]"]


def _as_interval(item: IntervalLike) -> Interval:
    return item if isinstance(item, Interval) else Interval(*item)


def _normalise(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort, drop empty intervals, and merge the ones that overlap or touch."""
    merged: list[Interval] = []
    for iv in sorted(iv for iv in intervals if not iv.is_empty):
        if merged and iv.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Interval(last.start, max(last.end, iv.end))
        else:
            merged.append(iv)
    return merged


class RangeSet:
    """An immutable set of numbers, kept as a canonical list of intervals."""

    def __init__(self, intervals: Iterable[IntervalLike] = ()) -> None:
        self._intervals = _normalise(_as_interval(item) for item in intervals)

    @property
    def intervals(self) -> list[Interval]:
        return list(self._intervals)

    def __iter__(self) -> Iterator[Interval]:
        return iter(self._intervals)

    def __len__(self) -> int:
        return len(self._intervals)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and self._intervals == other._intervals

    def __repr__(self) -> str:
        inner = ", ".join(f"[{iv.start}, {iv.end})" for iv in self._intervals)
        return f"RangeSet({inner})"

    def __contains__(self, x: object) -> bool:
        return any(x in iv for iv in self._intervals)

    @property
    def total_length(self) -> float:
        return sum(iv.length for iv in self._intervals)

    def add(self, item: IntervalLike) -> RangeSet:
        """A new set that also covers `item`."""
        return RangeSet([*self._intervals, _as_interval(item)])

    def union(self, other: RangeSet) -> RangeSet:
        return RangeSet([*self._intervals, *other._intervals])

    def intersection(self, other: RangeSet) -> RangeSet:
        parts = []
        for a in self._intervals:
            for b in other._intervals:
                common = a.intersection(b)
                if common is not None:
                    parts.append(common)
        return RangeSet(parts)

    def remove(self, item: IntervalLike) -> RangeSet:
        """A new set without the numbers in `item`; an interval may split in two."""
        cut = _as_interval(item)
        kept: list[Interval] = []
        for iv in self._intervals:
            if not iv.overlaps(cut):
                kept.append(iv)
                continue
            if iv.start < cut.start:
                kept.append(Interval(iv.start, cut.start))
            if cut.end < iv.end:
                kept.append(Interval(cut.end, iv.end))
        return RangeSet(kept)

    def gaps(self) -> list[Interval]:
        """The holes between consecutive intervals, in order."""
        return [Interval(prev.end, cur.start) for prev, cur in zip(self._intervals, self._intervals[1:])]

    def span(self) -> Interval | None:
        """The smallest interval covering the whole set, or None when the set is empty."""
        if not self._intervals:
            return None
        return Interval(self._intervals[0].start, self._intervals[-1].end)
