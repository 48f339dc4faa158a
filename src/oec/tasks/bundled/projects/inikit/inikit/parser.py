"""Parse INI text into a Config.

Syntax: ``[section]`` headers; ``key = value`` or ``key: value`` pairs (keys
are case-insensitive and stored lowercase); full-line comments starting with
``#`` or ``;``; inline comments only after whitespace (so ``a#b`` stays a
value); indented lines continue the previous value; a blank line ends it.
Keys in ``[DEFAULT]`` are visible from every section.
"""

from __future__ import annotations

from inikit.config import DEFAULT_SECTION, Config

COMMENT_PREFIXES = ("#", ";")


class ParseError(ValueError):
    """Malformed INI text; `lineno` is 1-based, as editors show it."""

    def __init__(self, message: str, lineno: int) -> None:
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno


def _strip_inline_comment(value: str) -> str:
    for i, ch in enumerate(value):
        preceded_by_space = i > 0 and value[i - 1].isspace()
        if ch in COMMENT_PREFIXES and preceded_by_space:
            return value[:i].rstrip()
    return value


def _split_pair(line: str) -> tuple[str, str, str]:
    """Split at the first '=' or ':' (whichever comes first): key, separator, value."""
    positions = [i for i in (line.find("="), line.find(":")) if i >= 0]
    if not positions:
        return line, "", ""
    i = min(positions)
    return line[:i], line[i], line[i + 1 :]


def parse(text: str) -> Config:
    """Parse INI text; raise ParseError naming the offending line."""
    sections: dict[str, dict[str, str]] = {}
    defaults: dict[str, str] = {}
    current: dict[str, str] | None = None
    last_key: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            last_key = None
            continue
        if stripped[0] in COMMENT_PREFIXES:
            continue
        if line[0].isspace() and current is not None and last_key is not None:
            current[last_key] += "\n" + _strip_inline_comment(stripped)
            continue
        if stripped.startswith("["):
            if not stripped.endswith("]"):
                raise ParseError("unclosed section header", lineno)
            name = stripped[1:-1].strip()
            if not name:
                raise ParseError("empty section name", lineno)
            if name == DEFAULT_SECTION:
                current = defaults
            elif name in sections:
                raise ParseError(f"duplicate section {name!r}", lineno)
            else:
                current = sections[name] = {}
            last_key = None
            continue
        if current is None:
            raise ParseError("key outside of any section", lineno)
        key, sep, value = _split_pair(stripped)
        key = key.strip().lower()
        if not sep or not key:
            raise ParseError(f"expected 'key = value', got {stripped!r}", lineno)
        if key in current:
            raise ParseError(f"duplicate key {key!r}", lineno)
        current[key] = _strip_inline_comment(value.strip())
        last_key = key
    return Config(sections, defaults)
