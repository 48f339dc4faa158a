"""rangeset: half-open numeric intervals, normalised sets of them, and inclusive date ranges."""

from rangeset.dates import DateRange, business_days
from rangeset.interval import Interval
from rangeset.rangeset import RangeSet

__all__ = ["DateRange", "Interval", "RangeSet", "business_days"]
