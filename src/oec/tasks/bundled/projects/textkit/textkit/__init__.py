"""textkit: small, dependency-free helpers for everyday text handling."""

from textkit.case import split_words, to_camel, to_kebab, to_pascal, to_snake, to_title
from textkit.slug import slugify
from textkit.tokens import ngrams, sentences, tokenize, word_count
from textkit.wrap import indent, truncate, wrap

__all__ = [
    "indent",
    "ngrams",
    "sentences",
    "slugify",
    "split_words",
    "to_camel",
    "to_kebab",
    "to_pascal",
    "to_snake",
    "to_title",
    "tokenize",
    "truncate",
    "word_count",
    "wrap",
]
