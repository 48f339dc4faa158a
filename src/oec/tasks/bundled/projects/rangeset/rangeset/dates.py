"""Inclusive date ranges: both the first and the last day belong to the range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterable, Iterator

_DAY = timedelta(days=1)


@dataclass(frozen=True)
class DateRange:
    """All days from `first` to `last`, both included."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise ValueError(f"first ({self.first}) is after last ({self.last})")

    def __len__(self) -> int:
        return (self.last - self.first).days + 1

    def __iter__(self) -> Iterator[date]:
        day = self.first
        while day <= self.last:
            yield day
            day += _DAY

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last

    def overlap(self, other: DateRange) -> DateRange | None:
        """The days both ranges share, or None."""
        first, last = max(self.first, other.first), min(self.last, other.last)
        return DateRange(first, last) if first <= last else None

    def chunks(self, days: int) -> list[DateRange]:
        """Consecutive sub-ranges of `days` days each; the last one may be shorter."""
        if days < 1:
            raise ValueError("days must be positive")
        out = []
        start = self.first
        while start <= self.last:
            end = min(start + timedelta(days=days - 1), self.last)
            out.append(DateRange(start, end))
            start = end + _DAY
        return out


def business_days(span: DateRange, holidays: Iterable[date] = ()) -> int:
    """Days in `span` that are Monday to Friday and not in `holidays`."""
    skip = set(holidays)
    return sum(1 for day in span if day.weekday() < 5 and day not in skip)
