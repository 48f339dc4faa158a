"""Evaluate an AST with variables, constants and a fixed table of functions."""

from __future__ import annotations

import math
import operator
from typing import Callable, Mapping, Union

from calc.errors import CalcError
from calc.parser import Binary, Call, Node, Num, Unary, Var

Number = Union[int, float]


def _round(x: Number, ndigits: Number | None = None) -> Number:
    """round(x) gives an int, round(x, n) a float with n decimals, as Python's round does."""
    return round(x) if ndigits is None else round(x, int(ndigits))


def _sqrt(x: Number) -> float:
    if x < 0:
        raise CalcError("sqrt of a negative number")
    return math.sqrt(x)


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "round": _round,
    "sqrt": _sqrt,
    "hypot": math.hypot,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_BINARY: dict[str, Callable[[Number, Number], Number]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}


def _apply(op: str, left: Number, right: Number) -> Number:
    if op in ("/", "//", "%") and right == 0:
        raise CalcError(f"division by zero in {left} {op} {right}")
    if op == "**" and left == 0 and right < 0:
        raise CalcError("zero cannot be raised to a negative power")
    try:
        result = _BINARY[op](left, right)
    except OverflowError:
        raise CalcError(f"result of {left} {op} {right} is too large") from None
    if isinstance(result, complex):
        raise CalcError(f"{left} {op} {right} has no real result")
    return result


def eval_node(node: Node, variables: Mapping[str, Number]) -> Number:
    """Value of `node`; variables shadow the constants pi, e and tau."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Var):
        if node.name in variables:
            return variables[node.name]
        if node.name in CONSTANTS:
            return CONSTANTS[node.name]
        raise CalcError(f"undefined variable {node.name!r}", node.pos)
    if isinstance(node, Unary):
        value = eval_node(node.operand, variables)
        return -value if node.op == "-" else value
    if isinstance(node, Binary):
        return _apply(node.op, eval_node(node.left, variables), eval_node(node.right, variables))
    if isinstance(node, Call):
        func = FUNCTIONS.get(node.name)
        if func is None:
            raise CalcError(f"unknown function {node.name!r}", node.pos)
        args = [eval_node(arg, variables) for arg in node.args]
        try:
            return func(*args)
        except TypeError:
            raise CalcError(f"wrong number of arguments for {node.name}()", node.pos) from None
    raise TypeError(f"not a calc node: {node!r}")
