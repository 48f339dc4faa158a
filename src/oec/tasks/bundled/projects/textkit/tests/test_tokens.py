import pytest

from textkit import ngrams, sentences, tokenize, word_count
from textkit.tokens import Token


def test_tokenize_words_and_punct():
    assert [t.text for t in tokenize("Hi, there!")] == ["Hi", ",", "there", "!"]


def test_tokenize_kinds():
    assert [t.kind for t in tokenize("pay 3.50 now.")] == ["word", "number", "word", "punct"]


def test_tokenize_keeps_contractions():
    assert [t.text for t in tokenize("don't stop")] == ["don't", "stop"]


def test_token_positions():
    token = tokenize("  abc")[0]
    assert token == Token("abc", "word", 2)
    assert token.end == 5


def test_word_count_ignores_punctuation():
    assert word_count("One, two -- three 4!") == 4


def test_ngrams_bigrams():
    assert ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")]


def test_ngrams_too_short():
    assert ngrams([1], 2) == []


def test_ngrams_rejects_zero():
    with pytest.raises(ValueError):
        ngrams([1, 2], 0)


def test_sentences_simple():
    assert sentences("It rains. We stay in! Why not?") == ["It rains.", "We stay in!", "Why not?"]


def test_sentences_abbreviation():
    assert sentences("Ask Dr. Who. He knows.") == ["Ask Dr. Who.", "He knows."]


def test_sentences_without_final_punctuation():
    assert sentences("First one. second part") == ["First one.", "second part"]
