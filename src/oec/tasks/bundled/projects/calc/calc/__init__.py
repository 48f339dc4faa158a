"""calc: a small, safe arithmetic expression evaluator (no eval(), no attribute access)."""

from __future__ import annotations

from typing import Mapping

from calc.errors import CalcError
from calc.evaluator import Number, eval_node
from calc.parser import parse
from calc.session import Session


def evaluate(expression: str, variables: Mapping[str, Number] | None = None) -> Number:
    """Parse and evaluate `expression`, e.g. ``evaluate("2 * x + 1", {"x": 3}) == 7``."""
    return eval_node(parse(expression), variables or {})


__all__ = ["CalcError", "Session", "evaluate", "parse"]
