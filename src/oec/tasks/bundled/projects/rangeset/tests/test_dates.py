from datetime import date

import pytest

from rangeset import DateRange, business_days


def test_length_is_inclusive():
    assert len(DateRange(date(2024, 3, 1), date(2024, 3, 3))) == 3


def test_single_day():
    assert list(DateRange(date(2024, 1, 1), date(2024, 1, 1))) == [date(2024, 1, 1)]


def test_rejects_reversed():
    with pytest.raises(ValueError):
        DateRange(date(2024, 1, 2), date(2024, 1, 1))


def test_contains():
    r = DateRange(date(2024, 1, 1), date(2024, 1, 31))
    assert date(2024, 1, 31) in r
    assert date(2024, 2, 1) not in r


def test_overlap():
    a = DateRange(date(2024, 1, 1), date(2024, 1, 10))
    b = DateRange(date(2024, 1, 8), date(2024, 1, 20))
    assert a.overlap(b) == DateRange(date(2024, 1, 8), date(2024, 1, 10))
    assert a.overlap(DateRange(date(2024, 2, 1), date(2024, 2, 2))) is None


def test_chunk_longer_than_range():
    r = DateRange(date(2024, 1, 1), date(2024, 1, 3))
    assert r.chunks(10) == [r]


def test_chunks_rejects_zero():
    with pytest.raises(ValueError):
        DateRange(date(2024, 1, 1), date(2024, 1, 3)).chunks(0)


def test_business_days_skip_weekend():
    # 2024-01-01 is a Monday; the range covers Mon..Sun
    assert business_days(DateRange(date(2024, 1, 1), date(2024, 1, 7))) == 5


def test_business_days_skip_holidays():
    span = DateRange(date(2024, 1, 1), date(2024, 1, 5))
    assert business_days(span, holidays=[date(2024, 1, 1)]) == 4
