"""Write a Config back to INI text that `parse` reads into an equal Config."""

from __future__ import annotations

from inikit.config import DEFAULT_SECTION, Config


def _format_value(value: str) -> str:
    # continuation lines must be indented to be read back as part of the value
    return value.replace("\n", "\n    ")


def dumps(config: Config) -> str:
    """Raw (not interpolated) values; DEFAULT first, then sections in order."""
    blocks = []
    named = [(DEFAULT_SECTION, config.defaults)] if config.defaults else []
    named += [(name, config.own_options(name)) for name in config.sections()]
    for name, values in named:
        lines = [f"[{name}]"]
        lines += [f"{key} = {_format_value(value)}" for key, value in values.items()]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
