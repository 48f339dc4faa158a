import pytest

from calc import CalcError
from calc.lexer import Token, tokenize


def kinds_and_texts(text):
    return [(t.kind, t.text) for t in tokenize(text)]


def test_simple_expression():
    assert kinds_and_texts("1 + x") == [("number", "1"), ("op", "+"), ("name", "x"), ("end", "")]


def test_two_char_operators():
    assert [t.text for t in tokenize("2**3//4")][:5] == ["2", "**", "3", "//", "4"]


def test_decimal_numbers():
    assert [t.text for t in tokenize("3.25 .5")][:2] == ["3.25", ".5"]


def test_exponent():
    assert tokenize("2e3")[0].text == "2e3"
    assert tokenize("1.5E2")[0].text == "1.5E2"


def test_positions():
    assert tokenize("  ab")[0] == Token("name", "ab", 2)


def test_names_with_underscores_and_digits():
    assert tokenize("_tmp2")[0].text == "_tmp2"


def test_unknown_character():
    with pytest.raises(CalcError) as info:
        tokenize("1 $ 2")
    assert info.value.pos == 2
