"""Procedural bug families (SWE-smith's kinds), one libcst transformer each.

Every family finds its *sites* in one function (a comparison, a `range()`
bound, an `if` test, a statement ...), and each site has one or more
*variants* (`<` -> `<=` or `>`). A transformer is run with a target index
over all (site, variant) pairs of the function, in the order libcst visits
them, and changes that one only; run with no target, it just counts them.
So a function's candidates are enumerated exactly, without randomness, and
each candidate is one small edit.

Body families transform the function's body only (never its decorators or
signature); `change_default` transforms its own parameters' defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import libcst as cst

__all__ = ["KINDS", "SiteTransformer", "apply_kind", "count_sites"]

# -- helpers --------------------------------------------------------------------------------------------

_ATOMS = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float, cst.SimpleString,
          cst.List, cst.Tuple, cst.Dict, cst.Set)


def _parens(expr: cst.BaseExpression) -> cst.BaseExpression:
    """`expr` wrapped in parentheses unless it binds tighter than any operator we put around it."""
    if isinstance(expr, _ATOMS) or getattr(expr, "lpar", None):
        return expr
    return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def _int_value(expr: cst.BaseExpression) -> int | None:
    """The value of an integer literal (`3`, `-3`), else None."""
    if isinstance(expr, cst.Integer):
        try:
            return int(expr.value, 0)
        except ValueError:
            return None
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        inner = _int_value(expr.expression)
        return -inner if inner is not None else None
    return None


def _int_literal(value: int) -> cst.BaseExpression:
    if value < 0:
        return cst.UnaryOperation(operator=cst.Minus(), expression=cst.Integer(str(-value)))
    return cst.Integer(str(value))


def _shift(expr: cst.BaseExpression, delta: int) -> cst.BaseExpression:
    """`expr + delta` written as a person would: `n` -> `n + 1`, `3` -> `4`, `n - 1` -> `n`."""
    value = _int_value(expr)
    if value is not None:
        return _int_literal(value + delta)
    if (isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Add, cst.Subtract))
            and _int_value(expr.right) is not None and not expr.lpar):
        right = _int_value(expr.right) * (1 if isinstance(expr.operator, cst.Add) else -1) + delta
        if right == 0:
            return expr.left
        operator = cst.Add() if right > 0 else cst.Subtract()
        return expr.with_changes(operator=operator, right=cst.Integer(str(abs(right))))
    operator = cst.Add() if delta > 0 else cst.Subtract()
    return cst.BinaryOperation(left=_parens(expr), operator=operator, right=cst.Integer(str(abs(delta))))


def _same_spacing(new: Any, old: Any) -> Any:
    """An operator node of another type with the old one's whitespace around it."""
    changes = {}
    for name in ("whitespace_before", "whitespace_after"):
        if hasattr(old, name) and hasattr(new, name):
            changes[name] = getattr(old, name)
    return new.with_changes(**changes) if changes else new


def _is_docstring(statement: cst.BaseSmallStatement) -> bool:
    return isinstance(statement, cst.Expr) and isinstance(statement.value, (cst.SimpleString, cst.ConcatenatedString))


class SiteTransformer(cst.CSTTransformer):
    """Counts (site, variant) pairs as it visits; changes only the `target`-th one (None: change nothing)."""

    def __init__(self, target: int | None = None) -> None:
        super().__init__()
        self.target = target
        self.seen = 0
        self.changed = False

    def pick(self, variants: int) -> int | None:
        """Register a site with `variants` variants; the variant to apply here, or None."""
        if variants <= 0:
            return None
        start, self.seen = self.seen, self.seen + variants
        if self.target is not None and start <= self.target < self.seen:
            self.changed = True
            return self.target - start
        return None


# -- the families ---------------------------------------------------------------------------------------

_BINARY_SWAPS: dict[type, Sequence[Callable[[], cst.BaseBinaryOp]]] = {
    cst.Add: (cst.Subtract,),
    cst.Subtract: (cst.Add,),
    cst.Multiply: (cst.Divide, cst.Add),
    cst.Divide: (cst.Multiply, cst.FloorDivide),
    cst.FloorDivide: (cst.Divide, cst.Modulo),
    cst.Modulo: (cst.FloorDivide,),
    cst.Power: (cst.Multiply,),
    cst.BitAnd: (cst.BitOr,),
    cst.BitOr: (cst.BitAnd,),
    cst.BitXor: (cst.BitOr,),
    cst.LeftShift: (cst.RightShift,),
    cst.RightShift: (cst.LeftShift,),
}
_AUG_SWAPS: dict[type, Callable[[], cst.BaseAugOp]] = {
    cst.AddAssign: cst.SubtractAssign,
    cst.SubtractAssign: cst.AddAssign,
    cst.MultiplyAssign: cst.DivideAssign,
    cst.DivideAssign: cst.MultiplyAssign,
    cst.BitOrAssign: cst.BitAndAssign,
    cst.BitAndAssign: cst.BitOrAssign,
}


class OperatorSwap(SiteTransformer):
    """Arithmetic, bitwise and boolean operators: `+` <-> `-`, `*` -> `/`, `and` <-> `or`, `+=` <-> `-=`."""

    def leave_BinaryOperation(self, original_node, updated_node):
        options = _BINARY_SWAPS.get(type(updated_node.operator), ())
        choice = self.pick(len(options))
        if choice is None:
            return updated_node
        return updated_node.with_changes(operator=_same_spacing(options[choice](), updated_node.operator))

    def leave_BooleanOperation(self, original_node, updated_node):
        if self.pick(1) is None:
            return updated_node
        swapped = cst.Or() if isinstance(updated_node.operator, cst.And) else cst.And()
        return updated_node.with_changes(operator=_same_spacing(swapped, updated_node.operator))

    def leave_AugAssign(self, original_node, updated_node):
        option = _AUG_SWAPS.get(type(updated_node.operator))
        if option is None or self.pick(1) is None:
            return updated_node
        return updated_node.with_changes(operator=_same_spacing(option(), updated_node.operator))


_COMPARE_SWAPS: dict[type, Sequence[Callable[[], cst.BaseCompOp]]] = {
    cst.LessThan: (cst.LessThanEqual, cst.GreaterThan),
    cst.LessThanEqual: (cst.LessThan, cst.GreaterThanEqual),
    cst.GreaterThan: (cst.GreaterThanEqual, cst.LessThan),
    cst.GreaterThanEqual: (cst.GreaterThan, cst.LessThanEqual),
    cst.Equal: (cst.NotEqual,),
    cst.NotEqual: (cst.Equal,),
    cst.In: (cst.NotIn,),
    cst.NotIn: (cst.In,),
    cst.Is: (cst.IsNot,),
    cst.IsNot: (cst.Is,),
}


class ComparisonSwap(SiteTransformer):
    """Comparison operators: `<` -> `<=` or `>`, `==` <-> `!=`, `in` <-> `not in`, `is` <-> `is not`."""

    def leave_ComparisonTarget(self, original_node, updated_node):
        options = _COMPARE_SWAPS.get(type(updated_node.operator), ())
        choice = self.pick(len(options))
        if choice is None:
            return updated_node
        return updated_node.with_changes(operator=_same_spacing(options[choice](), updated_node.operator))


class OffByOne(SiteTransformer):
    """Bounds one off: each argument of `range()` and each bound of a slice +1 or -1; an integer index +-1."""

    def leave_Call(self, original_node, updated_node):
        if not (isinstance(updated_node.func, cst.Name) and updated_node.func.value == "range"):
            return updated_node
        args = list(updated_node.args)
        if not args or any(a.star or a.keyword for a in args):
            return updated_node
        # range(n): the stop; range(a, b[, s]): start and stop
        positions = [0] if len(args) == 1 else [0, 1]
        choice = self.pick(2 * len(positions))
        if choice is None:
            return updated_node
        index, delta = positions[choice // 2], (1, -1)[choice % 2]
        args[index] = args[index].with_changes(value=_shift(args[index].value, delta))
        return updated_node.with_changes(args=args)

    def leave_Slice(self, original_node, updated_node):
        bounds = [name for name in ("lower", "upper") if getattr(updated_node, name) is not None]
        choice = self.pick(2 * len(bounds))
        if choice is None:
            return updated_node
        name, delta = bounds[choice // 2], (1, -1)[choice % 2]
        return updated_node.with_changes(**{name: _shift(getattr(updated_node, name), delta)})

    def leave_Index(self, original_node, updated_node):
        value = _int_value(updated_node.value)
        if value is None:
            return updated_node
        choice = self.pick(2)
        if choice is None:
            return updated_node
        return updated_node.with_changes(value=_int_literal(value + (1, -1)[choice]))


def _negate(test: cst.BaseExpression) -> cst.BaseExpression:
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not) and not test.lpar:
        return test.expression
    return cst.UnaryOperation(operator=cst.Not(), expression=_parens(test))


class InvertCondition(SiteTransformer):
    """The test of an `if`, `elif`, `while` or conditional expression negated."""

    def leave_If(self, original_node, updated_node):
        if self.pick(1) is None:
            return updated_node
        return updated_node.with_changes(test=_negate(updated_node.test))

    def leave_While(self, original_node, updated_node):
        if self.pick(1) is None:
            return updated_node
        return updated_node.with_changes(test=_negate(updated_node.test))

    def leave_IfExp(self, original_node, updated_node):
        if self.pick(1) is None:
            return updated_node
        return updated_node.with_changes(test=_negate(updated_node.test))


_REMOVABLE = (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.Expr, cst.Raise, cst.Del)


def _refill(block: cst.IndentedBlock) -> cst.IndentedBlock:
    """A block emptied by a removal holds `pass`, so the code still parses."""
    if block.body:
        return block
    return block.with_changes(body=[cst.SimpleStatementLine(body=[cst.Pass()])])


class RemoveStatement(SiteTransformer):
    """One statement removed: an assignment, an augmented assignment, a call, a `raise` or a `del`."""

    def leave_SimpleStatementLine(self, original_node, updated_node):
        body = updated_node.body
        if len(body) != 1 or not isinstance(body[0], _REMOVABLE) or _is_docstring(body[0]):
            return updated_node
        if isinstance(body[0], cst.AnnAssign) and body[0].value is None:
            return updated_node
        if self.pick(1) is None:
            return updated_node
        return cst.RemoveFromParent()

    def leave_IndentedBlock(self, original_node, updated_node):
        return _refill(updated_node)


class RemoveBranch(SiteTransformer):
    """A branch removed: a whole `if` statement, or its `else`, or one `elif` arm."""

    def __init__(self, target: int | None = None) -> None:
        super().__init__(target)
        self._elifs: set[int] = set()

    def visit_If(self, node):
        if isinstance(node.orelse, cst.If):
            self._elifs.add(id(node.orelse))

    def leave_If(self, original_node, updated_node):
        if id(original_node) in self._elifs:
            return updated_node  # an elif arm is a site of the `if` it belongs to
        arms = 1 + (updated_node.orelse is not None)
        choice = self.pick(arms)
        if choice is None:
            return updated_node
        if choice == 0:
            return cst.RemoveFromParent()
        orelse = updated_node.orelse
        return updated_node.with_changes(orelse=orelse.orelse if isinstance(orelse, cst.If) else None)

    def leave_IndentedBlock(self, original_node, updated_node):
        return _refill(updated_node)


class SwapArguments(SiteTransformer):
    """Two neighbouring positional arguments of a call swapped."""

    def leave_Call(self, original_node, updated_node):
        args = list(updated_node.args)
        pairs = []
        for i in range(len(args) - 1):
            a, b = args[i], args[i + 1]
            if a.star or b.star or a.keyword or b.keyword:
                continue
            if cst.Module([]).code_for_node(a.value) == cst.Module([]).code_for_node(b.value):
                continue
            pairs.append(i)
        choice = self.pick(len(pairs))
        if choice is None:
            return updated_node
        i = pairs[choice]
        args[i], args[i + 1] = args[i].with_changes(value=args[i + 1].value), args[i + 1].with_changes(value=args[i].value)
        return updated_node.with_changes(args=args)


class ChangeConstant(SiteTransformer):
    """A constant in the body changed: an integer +1 or -1, `True` <-> `False`."""

    def visit_UnaryOperation(self, node):
        return _int_value(node) is None  # a negative literal is one site, not a minus around another

    def leave_UnaryOperation(self, original_node, updated_node):
        return self._literal(updated_node)

    def leave_Integer(self, original_node, updated_node):
        return self._literal(updated_node)

    def _literal(self, node):
        value = _int_value(node)
        if value is None:
            return node
        choice = self.pick(2)
        if choice is None:
            return node
        return _int_literal(value + (1, -1)[choice])

    def leave_Name(self, original_node, updated_node):
        if updated_node.value not in ("True", "False") or self.pick(1) is None:
            return updated_node
        return updated_node.with_changes(value="False" if updated_node.value == "True" else "True")


def _default_variants(default: cst.BaseExpression) -> list[cst.BaseExpression]:
    value = _int_value(default)
    if value is not None:
        return [_int_literal(value + 1), _int_literal(value - 1)]
    if isinstance(default, cst.Name) and default.value in ("True", "False"):
        return [default.with_changes(value="False" if default.value == "True" else "True")]
    if isinstance(default, cst.SimpleString):
        quote = default.quote
        prefix = default.prefix
        empty = default.raw_value == ""
        return [cst.SimpleString(f"{prefix}{quote}{' ' if empty else ''}{quote}")]
    if isinstance(default, cst.Float):
        return [cst.Float(repr(float(default.value) * 2 if float(default.value) else 1.0))]
    return []


class ChangeDefault(SiteTransformer):
    """A default value of the function's own parameters changed (ints +-1, bools flipped, strings emptied)."""

    def transform_params(self, params: cst.Parameters) -> cst.Parameters:
        changes = {}
        for field in ("posonly_params", "params", "kwonly_params"):
            new = []
            for param in getattr(params, field):
                if param.default is not None:
                    variants = _default_variants(param.default)
                    choice = self.pick(len(variants))
                    if choice is not None:
                        param = param.with_changes(default=variants[choice])
                new.append(param)
            changes[field] = new
        return params.with_changes(**changes)


class EarlyReturn(SiteTransformer):
    """A `return` put before one of the body's top-level statements (returning the final return's name, or
    None), so the rest of the function is skipped."""

    def transform_body(self, body: cst.IndentedBlock) -> cst.IndentedBlock:
        statements = list(body.body)
        first = 1 if statements and _starts_with_docstring(statements[0]) else 0
        positions = list(range(first + 1, len(statements)))
        choice = self.pick(len(positions))
        if choice is None:
            return body
        value = _final_name(statements[-1])
        ret = cst.Return(value=cst.Name(value) if value else None)
        statements.insert(positions[choice], cst.SimpleStatementLine(body=[ret]))
        return body.with_changes(body=statements)


def _starts_with_docstring(statement: cst.BaseStatement) -> bool:
    return (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
            and _is_docstring(statement.body[0]))


def _final_name(statement: cst.BaseStatement) -> str | None:
    """`x` when the body ends with `return x` (x a plain name), else None."""
    if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
        ret = statement.body[0]
        if isinstance(ret, cst.Return) and isinstance(ret.value, cst.Name):
            return ret.value.value
    return None


#: family name -> (transformer class, what it does); the names are oec's own
KINDS: dict[str, type[SiteTransformer]] = {
    "op_swap": OperatorSwap,
    "compare_swap": ComparisonSwap,
    "off_by_one": OffByOne,
    "invert_condition": InvertCondition,
    "remove_statement": RemoveStatement,
    "remove_branch": RemoveBranch,
    "swap_args": SwapArguments,
    "change_constant": ChangeConstant,
    "change_default": ChangeDefault,
    "early_return": EarlyReturn,
}


def _run(kind: str, function: cst.FunctionDef, target: int | None) -> tuple[cst.FunctionDef, SiteTransformer]:
    transformer = KINDS[kind](target)
    if isinstance(transformer, ChangeDefault):
        return function.with_changes(params=transformer.transform_params(function.params)), transformer
    if isinstance(transformer, EarlyReturn):
        body = function.body
        if not isinstance(body, cst.IndentedBlock):
            return function, transformer
        return function.with_changes(body=transformer.transform_body(body)), transformer
    return function.with_changes(body=function.body.visit(transformer)), transformer


def count_sites(kind: str, function: cst.FunctionDef) -> int:
    """How many (site, variant) candidates family `kind` has in `function`."""
    return _run(kind, function, None)[1].seen


def apply_kind(kind: str, function: cst.FunctionDef, target: int) -> cst.FunctionDef | None:
    """`function` with the `target`-th candidate of family `kind` applied (None: no such candidate)."""
    changed, transformer = _run(kind, function, target)
    return changed if transformer.changed else None
