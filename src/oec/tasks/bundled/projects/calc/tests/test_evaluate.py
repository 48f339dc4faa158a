import math

import pytest

from calc import CalcError, evaluate


@pytest.mark.parametrize(
    "expression,expected",
    [
        ("1 + 2", 3),
        ("10 - 3 - 2", 5),
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("7 % 4", 3),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("-3 + 5", 2),
        ("-(2 + 3)", -5),
        ("+4", 4),
        ("2e3 + 1", 2001.0),
        ("100 / 10 / 5", 2.0),
    ],
)
def test_arithmetic(expression, expected):
    assert evaluate(expression) == expected


def test_integer_results_stay_integers():
    assert isinstance(evaluate("6 * 7"), int)


def test_variables():
    assert evaluate("2 * x + y", {"x": 3, "y": 1}) == 7


def test_constants():
    assert evaluate("2 * pi") == pytest.approx(math.tau)


def test_variables_shadow_constants():
    assert evaluate("e + 1", {"e": 1}) == 2


def test_undefined_variable():
    with pytest.raises(CalcError, match="undefined variable 'z'"):
        evaluate("z + 1")


def test_functions():
    assert evaluate("max(1, 5, 3) + min(4, 2)") == 7
    assert evaluate("abs(-3)") == 3
    assert evaluate("sqrt(16)") == 4.0
    assert evaluate("hypot(3, 4)") == 5.0


def test_round_with_digits():
    assert evaluate("round(3.14159, 2)") == 3.14


def test_unknown_function():
    with pytest.raises(CalcError, match="unknown function"):
        evaluate("foo(1)")


def test_wrong_argument_count():
    with pytest.raises(CalcError, match="wrong number of arguments"):
        evaluate("sqrt(1, 2)")


def test_division_by_zero():
    with pytest.raises(CalcError, match="division by zero"):
        evaluate("1 / 0")


def test_sqrt_of_negative():
    with pytest.raises(CalcError):
        evaluate("sqrt(-1)")


@pytest.mark.parametrize("expression", ["1 +", "(1 + 2", "1 2", "max(1,", ")"])
def test_syntax_errors(expression):
    with pytest.raises(CalcError):
        evaluate(expression)
