"""Config: parsed INI sections with typed getters and ${...} interpolation."""

from __future__ import annotations

import re
from typing import Any

DEFAULT_SECTION = "DEFAULT"
MAX_DEPTH = 10

_TRUE = frozenset({"1", "yes", "true", "on"})
_FALSE = frozenset({"0", "no", "false", "off"})
# ${key} refers to the same section, ${section:key} to another one
_REFERENCE = re.compile(r"\$\{([^}]+)\}")
_MISSING: Any = object()


class ConfigError(ValueError):
    """A value that cannot be converted or interpolated."""


class Config:
    """Sections of string values; [DEFAULT] supplies keys a section lacks."""

    def __init__(
        self,
        sections: dict[str, dict[str, str]] | None = None,
        defaults: dict[str, str] | None = None,
    ) -> None:
        self._sections = {name: dict(values) for name, values in (sections or {}).items()}
        self._defaults = dict(defaults or {})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and (self._sections, self._defaults) == (other._sections, other._defaults)

    __hash__ = None  # type: ignore[assignment]  # mutable contents

    def sections(self) -> list[str]:
        """Section names in file order, without DEFAULT."""
        return list(self._sections)

    def has_section(self, section: str) -> bool:
        return section in self._sections

    @property
    def defaults(self) -> dict[str, str]:
        return dict(self._defaults)

    def options(self, section: str) -> dict[str, str]:
        """Raw values of a section, with DEFAULT filling in the keys it lacks."""
        if section not in self._sections:
            raise KeyError(f"no section {section!r}")
        return {**self._defaults, **self._sections[section]}

    def own_options(self, section: str) -> dict[str, str]:
        """Raw values set in the section itself, without the ones DEFAULT supplies."""
        if section not in self._sections:
            raise KeyError(f"no section {section!r}")
        return dict(self._sections[section])

    def _lookup(self, section: str, key: str) -> str:
        values = self.options(section)
        key = key.lower()
        if key not in values:
            raise KeyError(f"no option {key!r} in section {section!r}")
        return values[key]

    def _interpolate(self, section: str, value: str, depth: int = 0) -> str:
        if depth > MAX_DEPTH:
            raise ConfigError(f"interpolation deeper than {MAX_DEPTH} levels in section {section!r}")

        def replace(match: re.Match[str]) -> str:
            ref = match.group(1).strip()
            if ":" in ref:
                ref_section, ref_key = ref.split(":", 1)
            else:
                ref_section, ref_key = section, ref
            try:
                raw = self._lookup(ref_section, ref_key)
            except KeyError:
                raise ConfigError(f"bad reference ${{{ref}}} in section {section!r}") from None
            return self._interpolate(ref_section, raw, depth + 1)

        return _REFERENCE.sub(replace, value)

    def get(self, section: str, key: str, fallback: Any = _MISSING, raw: bool = False) -> Any:
        """The value of `key`, interpolated unless `raw`; `fallback` when missing, else KeyError."""
        try:
            value = self._lookup(section, key)
        except KeyError:
            if fallback is _MISSING:
                raise
            return fallback
        return value if raw else self._interpolate(section, value)

    def getint(self, section: str, key: str, fallback: Any = _MISSING) -> Any:
        return self._convert(section, key, fallback, int)

    def getfloat(self, section: str, key: str, fallback: Any = _MISSING) -> Any:
        return self._convert(section, key, fallback, float)

    def getbool(self, section: str, key: str, fallback: Any = _MISSING) -> Any:
        return self._convert(section, key, fallback, _to_bool)

    def getlist(self, section: str, key: str, sep: str = ",") -> list[str]:
        """Split on `sep` and on newlines; items are stripped and empty items dropped."""
        value = self.get(section, key)
        items = value.replace("\n", sep).split(sep)
        return [item.strip() for item in items if item.strip()]

    def _convert(self, section: str, key: str, fallback: Any, convert: Any) -> Any:
        value = self.get(section, key, fallback=_MISSING if fallback is _MISSING else None)
        if value is None:
            return fallback
        try:
            return convert(value.strip())
        except ValueError as exc:
            raise ConfigError(f"[{section}] {key} = {value!r}: {exc}") from None

    def to_dict(self) -> dict[str, dict[str, str]]:
        """Every section with interpolated values (DEFAULT keys included)."""
        return {name: {key: self.get(name, key) for key in self.options(name)} for name in self._sections}


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r}")
