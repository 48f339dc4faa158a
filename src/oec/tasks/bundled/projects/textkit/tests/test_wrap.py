import pytest

from textkit import indent, truncate, wrap


def test_wrap_short_text_is_one_line():
    assert wrap("hello world", width=40) == ["hello world"]


def test_wrap_greedy():
    assert wrap("one two three four five", width=11) == ["one two", "three four", "five"]


def test_wrap_collapses_whitespace():
    assert wrap("a \n\n  b\tc", width=20) == ["a b c"]


def test_wrap_breaks_long_words():
    assert wrap("abcdefghij xy", width=4) == ["abcd", "efgh", "ij", "xy"]


def test_wrap_empty_text():
    assert wrap("   ", width=10) == []


def test_wrap_rejects_bad_width():
    with pytest.raises(ValueError):
        wrap("x", width=0)


def test_truncate_leaves_short_text():
    assert truncate("short", 10) == "short"


def test_truncate_adds_placeholder():
    assert truncate("hello world", 8) == "hello..."


def test_truncate_custom_placeholder():
    assert truncate("abcdefgh", 5, placeholder="~") == "abcd~"


def test_indent_every_line():
    assert indent("a\nb\n", "> ") == "> a\n> b\n"


def test_indent_blank_lines_when_asked():
    assert indent("a\n\nb", "  ", skip_blank=False) == "  a\n  \n  b"
