import pytest

from inikit import ParseError, parse

SAMPLE = """
# a comment
[server]
host = example.org
Port: 8080

; another comment
[paths]
root = /srv/app
"""


def test_sections_in_order():
    assert parse(SAMPLE).sections() == ["server", "paths"]


def test_values_and_colon_separator():
    config = parse(SAMPLE)
    assert config.get("server", "host") == "example.org"
    assert config.get("server", "port") == "8080"


def test_keys_are_case_insensitive():
    assert parse(SAMPLE).get("server", "PORT") == "8080"


def test_separator_is_first_of_equals_or_colon():
    config = parse("[a]\nurl = http://x:80\ntime: 10=ten\n")
    assert config.get("a", "url") == "http://x:80"
    assert config.get("a", "time") == "10=ten"


def test_inline_comment_after_whitespace():
    assert parse("[a]\nx = 1 ; one\ny = 2 # two\n").options("a") == {"x": "1", "y": "2"}


def test_hash_at_start_of_value_is_kept():
    assert parse("[a]\ncolor = #ff0000\n").get("a", "color") == "#ff0000"


def test_continuation_lines():
    config = parse("[a]\nitems = one\n  two\n  three\nnext = x\n")
    assert config.get("a", "items") == "one\ntwo\nthree"
    assert config.get("a", "next") == "x"


def test_blank_line_ends_continuation():
    with pytest.raises(ParseError):
        parse("[a]\nitems = one\n\n  two\n")


def test_empty_value():
    assert parse("[a]\nx =\n").get("a", "x") == ""


def test_key_outside_section():
    with pytest.raises(ParseError, match="outside"):
        parse("x = 1\n")


def test_duplicate_section():
    with pytest.raises(ParseError, match="duplicate section"):
        parse("[a]\n[a]\n")


def test_duplicate_key():
    with pytest.raises(ParseError, match="duplicate key"):
        parse("[a]\nx = 1\nX = 2\n")


def test_missing_separator():
    with pytest.raises(ParseError, match="expected"):
        parse("[a]\njust words\n")


def test_unclosed_header():
    with pytest.raises(ParseError, match="unclosed"):
        parse("[a\n")
