"""Tokenizing text into words, numbers and punctuation; n-grams; sentence splitting."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")

_TOKEN = re.compile(
    r"(?P<number>\d+(?:[.,]\d+)*)"
    r"|(?P<word>\w+(?:['\u2019]\w+)*)"
    r"|(?P<punct>[^\w\s])"
)


@dataclass(frozen=True)
class Token:
    """One token with its kind ('word', 'number' or 'punct') and where it starts in the text."""

    text: str
    kind: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def tokenize(text: str) -> list[Token]:
    """Split text into tokens; contractions ("don't") and numbers ("3.14", "1,000") stay whole."""
    return [Token(m.group(), m.lastgroup or "punct", m.start()) for m in _TOKEN.finditer(text)]


def word_count(text: str) -> int:
    """Number of word and number tokens (punctuation does not count)."""
    return sum(1 for token in tokenize(text) if token.kind != "punct")


def ngrams(items: Sequence[T], n: int) -> list[tuple[T, ...]]:
    """All runs of `n` consecutive items, in order: ngrams("abc", 2) -> [("a","b"), ("b","c")]."""
    if n < 1:
        raise ValueError("n must be positive")
    return [tuple(items[i : i + n]) for i in range(len(items) - n + 1)]


_ABBREVIATIONS = frozenset({"dr", "mr", "mrs", "ms", "prof", "st", "vs", "etc", "e.g", "i.e"})
_SENTENCE_END = re.compile(r"[.!?]+(?=\s+|$)")


def sentences(text: str) -> list[str]:
    """Split text into sentences at . ! ?, not after common abbreviations such as "Dr."."""
    result: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start : match.start()].split()
        last_word = before[-1].lower() if before else ""
        if match.group() == "." and last_word in _ABBREVIATIONS:
            continue
        sentence = text[start : match.end()].strip()
        if sentence:
            result.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        result.append(tail)
    return result
