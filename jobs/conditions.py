"""The rule condition language: comparisons over a window's aggregates, parsed, never eval'ed.

Grammar (keywords are lower case)::

    condition  := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" condition ")" | comparison
    comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | NUMBER | NAME | "(" sum ")"

Conditions evaluate over columns of results at once. A comparison involving
a missing value (NaN: e.g. the max of a field no event had, or a division by
zero) is false.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import NoReturn, Union

import numpy as np

from windows.errors import SpecError

_TOKEN = re.compile(
    r"\s*(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(<=|>=|==|!=|<|>|\+|-|\*|/|\(|\)))"
)
_KEYWORDS = {"and", "or", "not"}
_COMPARE = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Arith:
    op: str
    left: NumericNode
    right: NumericNode


@dataclass(frozen=True)
class Negate:
    operand: NumericNode


@dataclass(frozen=True)
class Compare:
    op: str
    left: NumericNode
    right: NumericNode


@dataclass(frozen=True)
class Logic:
    op: str  # "and" | "or"
    left: BoolNode
    right: BoolNode


@dataclass(frozen=True)
class Not:
    operand: BoolNode


NumericNode = Union[Number, Name, Arith, Negate]
BoolNode = Union[Compare, Logic, Not]


@dataclass(frozen=True)
class Condition:
    """A parsed rule condition and the aggregate names it reads."""

    text: str
    tree: BoolNode
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, np.ndarray], length: int) -> np.ndarray:
        """Boolean mask: for which of ``length`` results the condition holds."""
        if self.arithmetic:  # division by zero and inf - inf give inf and NaN, without a warning
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                result = _eval_bool(self.tree, values)
        else:  # comparisons (NaN included) warn about nothing: no errstate, which costs more than a comparison
            result = _eval_bool(self.tree, values)
        if result.shape == (length,):
            return result
        return np.broadcast_to(result, (length,)).copy()

    @cached_property
    def arithmetic(self) -> bool:
        """Whether the condition computes (+, -, *, /) before it compares."""
        return _has_arithmetic(self.tree)


def _eval_num(node: NumericNode, values: Mapping[str, np.ndarray]) -> np.ndarray | float:
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Name):
        column = values[node.name]
        return column if column.dtype == np.float64 else column.astype(np.float64)
    if isinstance(node, Negate):
        return -_eval_num(node.operand, values)
    return _ARITH[node.op](_eval_num(node.left, values), _eval_num(node.right, values))  # type: ignore[no-any-return]


def _eval_bool(node: BoolNode, values: Mapping[str, np.ndarray]) -> np.ndarray:
    if isinstance(node, Compare):
        return np.asarray(_COMPARE[node.op](_eval_num(node.left, values), _eval_num(node.right, values)))
    if isinstance(node, Not):
        return ~_eval_bool(node.operand, values)
    combine = np.logical_and if node.op == "and" else np.logical_or
    return np.asarray(combine(_eval_bool(node.left, values), _eval_bool(node.right, values)))


def _has_arithmetic(node: BoolNode | NumericNode) -> bool:
    if isinstance(node, Arith):
        return True
    if isinstance(node, (Compare, Logic)):
        return _has_arithmetic(node.left) or _has_arithmetic(node.right)
    if isinstance(node, (Not, Negate)):
        return _has_arithmetic(node.operand)
    return False


class _ParseError(SpecError):
    """A condition syntax error that knows how far the parser got."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.column = column


class _Parser:
    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.where = where
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, column)
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = _TOKEN.match(text, position)
            if not match:
                column = len(text) - len(text[position:].lstrip()) + 1
                self.fail(f"unexpected character {text[column - 1]!r}", column)
            number, name, symbol = match.groups()
            column = match.start(match.lastindex or 0) + 1
            if number is not None:
                self.tokens.append(("num", number, column))
            elif name is not None:
                self.tokens.append(("kw" if name in _KEYWORDS else "name", name, column))
            else:
                self.tokens.append(("sym", symbol, column))
            position = match.end()
        self.position = 0
        self.names: set[str] = set()

    def fail(self, message: str, column: int | None = None) -> NoReturn:
        if column is None:
            column = self.tokens[self.position][2] if self.position < len(self.tokens) else len(self.text) + 1
        raise _ParseError(f"{self.where}condition {self.text!r}: {message} at column {column}.", column)

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, text: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            self.fail("unexpected end of condition" if text is None else f"expected {text!r} but the condition ended")
        assert token is not None
        if text is not None and token[1] != text:
            self.fail(f"expected {text!r}, found {token[1]!r}")
        self.position += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token is not None and token[0] in ("sym", "kw") and token[1] in texts

    def parse(self) -> BoolNode:
        if not self.tokens:
            self.fail("the condition is empty", 1)
        tree = self.or_expr()
        if self.peek() is not None:
            self.fail(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return tree

    def or_expr(self) -> BoolNode:
        node = self.and_expr()
        while self.at("or"):
            self.take()
            node = Logic("or", node, self.and_expr())
        return node

    def and_expr(self) -> BoolNode:
        node = self.not_expr()
        while self.at("and"):
            self.take()
            node = Logic("and", node, self.not_expr())
        return node

    def not_expr(self) -> BoolNode:
        if self.at("not"):
            self.take()
            return Not(self.not_expr())
        if self.at("("):
            # "(" may open a boolean group or an arithmetic one; try boolean first.
            saved = self.position
            self.take("(")
            try:
                inner = self.or_expr()
                self.take(")")
            except _ParseError as as_group:
                self.position = saved
                try:
                    return self.comparison()
                except _ParseError as as_arithmetic:
                    # report whichever reading of "(" got further into the text
                    raise as_group if as_group.column >= as_arithmetic.column else as_arithmetic from None
            if self.at(*_COMPARE):
                self.position = saved
                return self.comparison()
            return inner
        return self.comparison()

    def comparison(self) -> BoolNode:
        left = self.sum()
        token = self.peek()
        if token is None or token[1] not in _COMPARE:
            self.fail("expected a comparison (<, <=, >, >=, ==, !=)")
        self.take()
        assert token is not None
        return Compare(token[1], left, self.sum())

    def sum(self) -> NumericNode:
        node = self.product()
        while self.at("+", "-"):
            op = self.take()[1]
            node = Arith(op, node, self.product())
        return node

    def product(self) -> NumericNode:
        node = self.unary()
        while self.at("*", "/"):
            op = self.take()[1]
            node = Arith(op, node, self.unary())
        return node

    def unary(self) -> NumericNode:
        token = self.peek()
        if token is None:
            self.fail("expected a number or an aggregate name but the condition ended")
        assert token is not None
        kind, text, _ = token
        if kind == "sym" and text == "-":
            self.take()
            return Negate(self.unary())
        if kind == "sym" and text == "(":
            self.take()
            node = self.sum()
            self.take(")")
            return node
        if kind == "num":
            self.take()
            return Number(float(text))
        if kind == "name":
            self.take()
            self.names.add(text)
            return Name(text)
        self.fail(f"expected a number or an aggregate name, found {text!r}")
        raise AssertionError  # unreachable


def parse_condition(text: object, *, known: frozenset[str] | set[str], where: str = "") -> Condition:
    """Parse ``text``; every name must be one of ``known`` (the window's aggregate names)."""
    if not isinstance(text, str):
        raise SpecError(f"{where}condition must be a string such as 'requests > 50', got {text!r}.")
    parser = _Parser(text, where)
    tree = parser.parse()
    unknown = sorted(parser.names - set(known))
    if unknown:
        column = next(t[2] for t in parser.tokens if t[0] == "name" and t[1] == unknown[0])
        raise SpecError(
            f"{where}condition {text!r}: {unknown[0]!r} at column {column} is not an aggregate of the window "
            f"(known: {', '.join(sorted(known))})."
        )
    return Condition(text=text, tree=tree, names=frozenset(parser.names))
