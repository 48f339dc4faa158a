"""Paragraph wrapping, truncation and indentation."""

from __future__ import annotations


def wrap(text: str, width: int = 70) -> list[str]:
    """Greedy word wrap: fill each line with as many words as fit in `width`.

    Whitespace runs collapse to single spaces. A word longer than `width`
    is broken into `width`-sized chunks, so no line exceeds `width`.
    """
    if width < 1:
        raise ValueError("width must be positive")
    lines: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > width:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        if not word:
            continue
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= width:
            current = f"{current} {word}"
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def truncate(text: str, width: int, placeholder: str = "...") -> str:
    """Shorten `text` to at most `width` characters, ending with `placeholder` when cut."""
    if width < len(placeholder):
        raise ValueError("width is smaller than the placeholder")
    if len(text) <= width:
        return text
    return text[: width - len(placeholder)].rstrip() + placeholder


def indent(text: str, prefix: str, skip_blank: bool = True) -> str:
    """Add `prefix` to every line; blank lines stay empty unless `skip_blank` is false."""
    out = []
    for line in text.splitlines(keepends=True):
        if skip_blank and not line.strip():
            out.append(line)
        else:
            out.append(prefix + line)
    return "".join(out)
