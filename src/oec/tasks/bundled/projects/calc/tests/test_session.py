import pytest

from calc import CalcError, Session


def test_assignment_and_reuse():
    session = Session()
    assert session.run("width = 3") == 3
    assert session.run("width * 2") == 6


def test_last_result():
    session = Session()
    session.run("20 + 1")
    assert session.run("_ * 2") == 42


def test_cannot_assign_builtin():
    with pytest.raises(CalcError):
        Session().run("pi = 3")


def test_failed_line_keeps_state():
    session = Session()
    session.run("x = 1")
    with pytest.raises(CalcError):
        session.run("x = y")
    assert session.variables["x"] == 1
