"""oec: train multi-turn LM agents with on-policy expert corrections (arXiv 2512.14895)."""

__version__ = "0.1.0"
