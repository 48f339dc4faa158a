import pytest

from rangeset import Interval


def test_length_and_empty():
    assert Interval(2, 5).length == 3
    assert Interval(4, 4).is_empty


def test_rejects_reversed_bounds():
    with pytest.raises(ValueError):
        Interval(5, 2)


def test_contains_is_half_open():
    iv = Interval(1, 3)
    assert 1 in iv
    assert 2.5 in iv
    assert 3 not in iv
    assert "2" not in iv


def test_overlapping_intervals():
    assert Interval(0, 5).overlaps(Interval(4, 8))
    assert Interval(4, 8).overlaps(Interval(0, 5))


def test_disjoint_intervals_do_not_overlap():
    assert not Interval(0, 2).overlaps(Interval(5, 8))


def test_touching_intervals_touch():
    assert Interval(1, 3).touches(Interval(3, 5))
    assert not Interval(1, 3).touches(Interval(4, 5))


def test_intersection():
    assert Interval(0, 5).intersection(Interval(3, 9)) == Interval(3, 5)
    assert Interval(0, 1).intersection(Interval(2, 3)) is None


def test_hull():
    assert Interval(0, 1).hull(Interval(5, 6)) == Interval(0, 6)


def test_shift():
    assert Interval(1, 2).shift(10) == Interval(11, 12)


def test_split():
    assert Interval(0, 10).split(4) == (Interval(0, 4), Interval(4, 10))
    with pytest.raises(ValueError):
        Interval(0, 10).split(11)
