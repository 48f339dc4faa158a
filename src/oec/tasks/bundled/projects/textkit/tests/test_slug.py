import pytest

from textkit import slugify


def test_basic_phrase():
    assert slugify("Hello, World!") == "hello-world"


def test_accents_are_folded():
    assert slugify("Crème Brûlée à la carte") == "creme-brulee-a-la-carte"


def test_custom_separator():
    assert slugify("snake case please", sep="_") == "snake_case_please"


def test_keep_case():
    assert slugify("Keep THIS Case", lowercase=False) == "Keep-THIS-Case"


def test_leading_and_trailing_junk_is_stripped():
    assert slugify("  --hello--  ") == "hello"


def test_max_length_cuts_at_word_boundary():
    assert slugify("the quick brown fox", max_length=12) == "the-quick"


def test_max_length_hard_cut_for_one_long_word():
    assert slugify("supercalifragilistic", max_length=5) == "super"


def test_empty_separator_rejected():
    with pytest.raises(ValueError):
        slugify("x", sep="")
