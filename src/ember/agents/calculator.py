"""Exact arithmetic for the agents: an expression is parsed with Python's `ast`, checked against a short
allow-list (numbers, + - * / // % **, parentheses, a few named functions and constants) and evaluated
with sympy's exact numbers, so `1/3 + 1/6` is `1/2`, not 0.49999….

Nothing is ever `eval`ed: a name, attribute, call or literal outside the allow-list is refused with
`CalculationError`, as are oversized inputs and powers that would take unbounded time or memory. This
module does not read words ("twelve"), units or equations; the model turns a question into an expression.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sympy

from ember.errors import EmberError

MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 10_000
MAX_RESULT_DIGITS = 2_000
DECIMAL_DIGITS = 15

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: lambda a, b: sympy.floor(a / b),
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": sympy.sqrt,
    "abs": sympy.Abs,
    "exp": sympy.exp,
    "log": sympy.log,
    "ln": sympy.log,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "floor": sympy.floor,
    "ceil": sympy.ceiling,
    "round": lambda x, n=0: sympy.Float(round(float(x), int(n))) if n else sympy.Integer(round(float(x))),
    "factorial": sympy.factorial,
    "gcd": sympy.gcd,
    "lcm": sympy.lcm,
    "min": sympy.Min,
    "max": sympy.Max,
    "int": lambda x: sympy.Integer(int(x)),
    "float": lambda x: x,
}
CONSTANTS: dict[str, Any] = {"pi": sympy.pi, "e": sympy.E}
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%(?!\s*[\d(])")


class CalculationError(EmberError):
    """The expression is not arithmetic this calculator will evaluate (the message says why)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_expression"


@dataclass(frozen=True)
class Result:
    """An exact value (`exact`, e.g. "1/2" or "sqrt(2)") and its decimal form (`decimal`, e.g. "0.5")."""

    expression: str
    exact: str
    decimal: str

    def text(self) -> str:
        if self.exact == self.decimal:
            return f"{self.expression} = {self.exact}"
        return f"{self.expression} = {self.exact} ≈ {self.decimal}"


def normalise(expression: str) -> str:
    """Common ways people write arithmetic, as Python syntax: the multiplication and division signs, ^,
    thousands separators, 15%."""
    text = expression.strip().rstrip("=?. ").replace("\u00d7", "*").replace("\u00f7", "/").replace("^", "**")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return _PERCENT.sub(r"(\1/100)", text)


def calculate(expression: str) -> Result:
    """Evaluate `expression` exactly; raises CalculationError for anything outside the allow-list."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculationError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    text = normalise(expression)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"not an arithmetic expression: {expression!r}") from exc
    return result(expression.strip(), evaluate(tree.body))


def evaluate(node: ast.AST, names: Mapping[str, Any] = CONSTANTS) -> Any:
    """The exact value of the allowed expression `node`, with `names` bound (pi and e by default)."""
    try:
        value = _evaluate(node, names)
    except ZeroDivisionError as exc:
        raise CalculationError("division by zero") from exc
    if value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise CalculationError("the result is undefined or infinite (division by zero?)")
    if len(str(value)) > MAX_RESULT_DIGITS:
        raise CalculationError(f"the result has more than {MAX_RESULT_DIGITS} digits")
    return value


def result(expression: str, value: Any) -> Result:
    """`value` (from `evaluate`) in exact and decimal form, labelled with what produced it."""
    return Result(expression, str(value), _decimal(value))


def _decimal(value: Any) -> str:
    if value.is_Integer:
        return str(value)
    number = sympy.N(value, DECIMAL_DIGITS)
    if not number.is_real:
        return str(number)
    return f"{float(number):.{DECIMAL_DIGITS}g}"


def _check_power(base: Any, exponent: Any) -> None:
    """Refuse powers whose exponent or result size would take unbounded time or memory."""
    if not exponent.is_number or abs(exponent) > MAX_EXPONENT:
        raise CalculationError(f"exponents are limited to ±{MAX_EXPONENT}")
    size = abs(base)
    if size.is_number and size > 1 and float(abs(exponent)) * float(sympy.log(size, 10)) > MAX_RESULT_DIGITS:
        raise CalculationError(f"the result would have more than {MAX_RESULT_DIGITS} digits")


def _evaluate(node: ast.AST, names: Mapping[str, Any] = CONSTANTS) -> Any:
    """Build the sympy value of one allowed node, with `names` bound; refuse everything else."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return sympy.Rational(str(node.value)) if isinstance(node.value, float) else sympy.Integer(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, names), _evaluate(node.right, names)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, names))
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        if node.keywords:
            raise CalculationError("functions take positional arguments only")
        args = [_evaluate(arg, names) for arg in node.args]
        if node.func.id == "factorial" and (not args or abs(args[0]) > MAX_EXPONENT // 10):
            raise CalculationError(f"factorial is limited to n ≤ {MAX_EXPONENT // 10}")
        try:
            return _FUNCTIONS[node.func.id](*args)
        except TypeError as exc:
            raise CalculationError(f"wrong arguments to {node.func.id}()") from exc
    allowed = ", ".join(sorted(_FUNCTIONS))
    raise CalculationError(
        f"unsupported element {ast.unparse(node)!r}: use numbers, + - * / // % ** and {allowed}, pi, e"
    )
