"""inikit: a small INI parser with typed getters, ${...} interpolation and a writer."""

from inikit.config import Config, ConfigError
from inikit.parser import ParseError, parse
from inikit.writer import dumps

__all__ = ["Config", "ConfigError", "ParseError", "dumps", "parse"]
