from rangeset import Interval, RangeSet


def test_sorted_and_merged():
    rs = RangeSet([(5, 7), (0, 2), (1, 3)])
    assert rs.intervals == [Interval(0, 3), Interval(5, 7)]


def test_adjacent_intervals_merge():
    assert RangeSet([(0, 2), (2, 4)]).intervals == [Interval(0, 4)]


def test_empty_intervals_dropped():
    assert RangeSet([(3, 3)]).intervals == []


def test_contains():
    rs = RangeSet([(0, 2), (5, 6)])
    assert 1 in rs
    assert 5.5 in rs
    assert 3 not in rs


def test_total_length():
    assert RangeSet([(0, 2), (5, 6)]).total_length == 3


def test_add_bridges_two_intervals():
    rs = RangeSet([(0, 2), (4, 6)]).add((1, 5))
    assert rs.intervals == [Interval(0, 6)]


def test_union():
    assert RangeSet([(0, 1)]).union(RangeSet([(3, 4)])) == RangeSet([(0, 1), (3, 4)])


def test_intersection():
    a = RangeSet([(0, 5), (8, 12)])
    b = RangeSet([(3, 9)])
    assert a.intersection(b).intervals == [Interval(3, 5), Interval(8, 9)]


def test_remove_left_edge():
    assert RangeSet([(0, 10)]).remove((0, 4)).intervals == [Interval(4, 10)]


def test_remove_right_edge():
    assert RangeSet([(0, 10)]).remove((6, 12)).intervals == [Interval(0, 6)]


def test_remove_whole_interval():
    assert RangeSet([(0, 2), (5, 6)]).remove((4, 7)).intervals == [Interval(0, 2)]


def test_gaps_of_single_interval():
    assert RangeSet([(0, 3)]).gaps() == []


def test_span():
    assert RangeSet([(2, 3), (7, 9)]).span() == Interval(2, 9)
    assert RangeSet().span() is None


def test_repr():
    assert repr(RangeSet([(0, 1)])) == "RangeSet([0, 1))"
