"""An interactive session: assignments, and `_` for the last result."""

from __future__ import annotations

import re

from calc.errors import CalcError
from calc.evaluator import CONSTANTS, FUNCTIONS, Number, eval_node
from calc.parser import parse

_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)(.*)$")


class Session:
    """Evaluates lines one by one, remembering variables between them."""

    def __init__(self) -> None:
        self.variables: dict[str, Number] = {}

    def run(self, line: str) -> Number:
        """Evaluate `line`; ``name = expr`` also stores the value. The result is kept as `_`."""
        match = _ASSIGNMENT.match(line)
        target, expression = (match.group(1), match.group(2)) if match else (None, line)
        if target is not None and (target in FUNCTIONS or target in CONSTANTS):
            raise CalcError(f"cannot assign to built-in name {target!r}")
        value = eval_node(parse(expression), self.variables)
        if target is not None:
            self.variables[target] = value
        self.variables["_"] = value
        return value
