"""Dollar cost of a model call, from a small price table or explicit overrides.

Why a table at all: runs have cost limits and reports compare strategies by
cost, so well-known API models should be priced without configuration. Why so
small and strict: a wrong price is worse than none. A name matches a table
entry only exactly or with a date/"latest" suffix (``gpt-4o-2024-08-06``,
``claude-3-5-sonnet-20241022``); anything else (a local model, a newer model
this table does not know) has cost None, never a guess and never a crash.
Prices are USD per million tokens as published by the vendors when this was
written; override them with ``price_in_per_mtok`` / ``price_out_per_mtok``.
"""

from __future__ import annotations

import re

#: (input, output) USD per million tokens
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    # Anthropic
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-opus-4-1": (15.00, 75.00),
}

# a dated snapshot or alias of a table entry: -20241022, -2024-08-06, -latest
_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


def price_per_mtok(model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens for `model`, or None when unknown.

    A leading ``provider/`` (as in ``openai/gpt-4o``) is ignored.
    """
    name = model.rsplit("/", 1)[-1].strip().lower()
    if name in PRICES_PER_MTOK:
        return PRICES_PER_MTOK[name]
    base = _SUFFIX.sub("", name)
    return PRICES_PER_MTOK.get(base) if base != name else None


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int,
             price_in_per_mtok: float | None = None, price_out_per_mtok: float | None = None) -> float | None:
    """Cost of one call; an override replaces the table's price for its side.

    None when either side's price is unknown (a partial sum would look like a
    real, too-low cost).
    """
    table = price_per_mtok(model)
    p_in = price_in_per_mtok if price_in_per_mtok is not None else (table[0] if table else None)
    p_out = price_out_per_mtok if price_out_per_mtok is not None else (table[1] if table else None)
    if p_in is None or p_out is None:
        return None
    return (prompt_tokens * p_in + completion_tokens * p_out) / 1_000_000
