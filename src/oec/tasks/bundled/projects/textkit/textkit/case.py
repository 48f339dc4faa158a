"""Identifier case conversion: snake_case, camelCase, PascalCase, kebab-case, Title Case."""

from __future__ import annotations

import re

# An acronym followed by a capitalised word ("HTTPServer" -> "HTTP", "Server"),
# a (capitalised) lowercase word, a bare acronym, or a run of digits.
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def split_words(text: str) -> list[str]:
    """Split an identifier or phrase into its words, keeping their original case."""
    return _WORD.findall(text)


def to_snake(text: str) -> str:
    """``"parseHTTPResponse"`` -> ``"parse_http_response"``."""
    return "_".join(word.lower() for word in split_words(text))


def to_kebab(text: str) -> str:
    """``"parseHTTPResponse"`` -> ``"parse-http-response"``."""
    return "-".join(word.lower() for word in split_words(text))


def to_camel(text: str) -> str:
    """``"parse_http_response"`` -> ``"parseHttpResponse"``."""
    words = split_words(text)
    if not words:
        return ""
    return words[0].lower() + "".join(word.capitalize() for word in words[1:])


def to_pascal(text: str) -> str:
    """``"parse_http_response"`` -> ``"ParseHttpResponse"``."""
    return "".join(word.capitalize() for word in split_words(text))


_SMALL_WORDS = frozenset({"a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to"})


def to_title(text: str) -> str:
    """Title Case with small words kept lowercase, except the first and last word."""
    words = [word.lower() for word in split_words(text)]
    last = len(words) - 1
    return " ".join(
        word if 0 < i < last and word in _SMALL_WORDS else word.capitalize()
        for i, word in enumerate(words)
    )
