"""URL slugs: ASCII, lowercase, words joined by a separator."""

from __future__ import annotations

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def _ascii_fold(text: str) -> str:
    """Drop accents ("café" -> "cafe") and any character with no ASCII form."""
    decomposed = unicodedata.normalize("NFKD", text)
    return decomposed.encode("ascii", "ignore").decode("ascii")


def slugify(text: str, sep: str = "-", max_length: int | None = None, lowercase: bool = True) -> str:
    """Turn `text` into a slug such as ``"hello-world"``.

    Runs of anything other than ASCII letters and digits become one `sep`.
    With `max_length`, the slug is cut at a word boundary so that it is at
    most `max_length` characters long; a single word longer than the limit
    is cut hard.
    """
    if not sep:
        raise ValueError("sep must not be empty")
    if max_length is not None and max_length < 1:
        raise ValueError("max_length must be positive")
    slug = _NON_ALNUM.sub(sep, _ascii_fold(text)).strip(sep)
    if lowercase:
        slug = slug.lower()
    if max_length is not None and len(slug) > max_length:
        cut = slug.rfind(sep, 0, max_length + 1)
        slug = slug[:cut] if cut > 0 else slug[:max_length]
        slug = slug.strip(sep)
    return slug
