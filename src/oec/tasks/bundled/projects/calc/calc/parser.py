"""Precedence-climbing parser from tokens to a small AST.

Precedence, low to high: + -, then * / // %, then unary + -, then **.
So ``-2 ** 2 == -4`` and ``2 ** -1 == 0.5``, as in Python; ** is right-associative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from calc.errors import CalcError
from calc.lexer import Token, tokenize

BINARY_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "%": 2, "**": 4}
UNARY_PRECEDENCE = 3
RIGHT_ASSOC = frozenset({"**"})


@dataclass(frozen=True)
class Num:
    value: Union[int, float]


@dataclass(frozen=True)
class Var:
    name: str
    pos: int


@dataclass(frozen=True)
class Unary:
    op: str
    operand: "Node"


@dataclass(frozen=True)
class Binary:
    op: str
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple["Node", ...]
    pos: int


Node = Union[Num, Var, Unary, Binary, Call]


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> Token:
        token = self.advance()
        if token.text != text or token.kind != "op":
            raise CalcError(f"expected {text!r}, got {token.text or 'end of input'!r}", token.pos)
        return token

    def expression(self, min_prec: int = 1) -> Node:
        left = self.unary()
        while True:
            token = self.peek()
            prec = BINARY_PRECEDENCE.get(token.text) if token.kind == "op" else None
            if prec is None or prec < min_prec:
                return left
            self.advance()
            next_min = prec if token.text in RIGHT_ASSOC else prec + 1
            left = Binary(token.text, left, self.expression(next_min))

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "op" and token.text in ("+", "-"):
            self.advance()
            return Unary(token.text, self.expression(UNARY_PRECEDENCE))
        return self.primary()

    def primary(self) -> Node:
        token = self.advance()
        if token.kind == "number":
            is_float = any(c in token.text for c in ".eE")
            return Num(float(token.text) if is_float else int(token.text))
        if token.kind == "name":
            if self.peek().text == "(" and self.peek().kind == "op":
                self.advance()
                return Call(token.text, self.arguments(), token.pos)
            return Var(token.text, token.pos)
        if token.kind == "op" and token.text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        raise CalcError(f"unexpected {token.text or 'end of input'!r}", token.pos)

    def arguments(self) -> tuple[Node, ...]:
        args: list[Node] = []
        if self.peek().text == ")":
            self.advance()
            return ()
        while True:
            args.append(self.expression())
            if self.peek().text == ",":
                self.advance()
                continue
            self.expect(")")
            return tuple(args)


def parse(text: str) -> Node:
    """Parse a whole expression; CalcError on trailing input or bad syntax."""
    parser = _Parser(tokenize(text))
    node = parser.expression()
    token = parser.peek()
    if token.kind != "end":
        raise CalcError(f"unexpected {token.text!r}", token.pos)
    return node
