"""Program-aided answers: the model writes a few lines of arithmetic, the calculator runs them exactly.

A word problem ("Tom buys 3 packs of 12 eggs and breaks 5; how many are left?") is turned by the `chat`
model into straight-line code (`eggs = 3 * 12`, `answer = eggs - 5`); `run_program` evaluates it with the
calculator's allow-list and sympy's exact numbers. Only assignments, augmented assignments and `print`
of a value are accepted — no imports, loops, functions, attributes or strings — so nothing is ever
executed by Python itself. A program that breaks those rules, or binds no answer, raises
`CalculationError` (`write_program` reports it as the program's `problem`); the caller decides what to do
then (ember-auto escalates to `ember-thinking`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from ember.agents.calculator import CONSTANTS, CalculationError, Result, evaluate, result
from ember.engines.base import Engine
from ember.engines.passes import complete, with_system
from ember.types import GenerationParams, Message, Usage

MAX_PROGRAM_CHARS = 2_000
MAX_STATEMENTS = 40
PROGRAM_TOKENS = 384
PROGRAM_PROMPT = (
    "Turn the user's problem into a short Python program that computes the answer with arithmetic only: "
    "one assignment per line, a descriptive variable name for every quantity in the problem, no imports, "
    "no functions, no loops, no input(). Store the final number in a variable named answer. "
    "Reply with the code only, in one ```python block."
)
_ANSWER_LINE = re.compile(r"(?im)^\s*(?:final\s+)?answer\s*:.*$")  # a prose line some models add after the code
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", re.DOTALL)


@dataclass(frozen=True)
class Program:
    """A program the model wrote, the tokens writing it took, and its exact answer, or why it did not run."""

    code: str
    usage: Usage
    answer: Result | None
    problem: str | None = None


def code_of(text: str) -> str:
    """The code in a model's reply: its first fenced block, else the whole reply."""
    match = _FENCE.search(text)
    return _ANSWER_LINE.sub("", match.group(1) if match else text).strip()


def run_program(code: str) -> Result:
    """Evaluate straight-line arithmetic exactly; the value of `answer`, else of the last print or
    assignment. Raises CalculationError for anything outside the allow-list."""
    if len(code) > MAX_PROGRAM_CHARS:
        raise CalculationError(f"the program is longer than {MAX_PROGRAM_CHARS} characters")
    try:
        tree = ast.parse(code, mode="exec")
    except SyntaxError as exc:
        raise CalculationError(f"not a program: {exc.msg} (line {exc.lineno})") from exc
    if len(tree.body) > MAX_STATEMENTS:
        raise CalculationError(f"the program has more than {MAX_STATEMENTS} statements")
    names: dict[str, Any] = dict(CONSTANTS)
    last: Any = None
    for statement in tree.body:
        value = _run(statement, names)
        last = value if value is not None else last
    answer = names.get("answer", last)
    if answer is None:
        raise CalculationError("the program computes no answer")
    return result("answer", answer)


def _run(statement: ast.stmt, names: dict[str, Any]) -> Any:
    """Run one allowed statement against `names`; the value it produced, or None for a docstring."""
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target = statement.targets[0]
        if isinstance(target, ast.Name):
            names[target.id] = evaluate(statement.value, names)
            return names[target.id]
    if isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
        current = ast.Name(statement.target.id, ast.Load())
        names[statement.target.id] = evaluate(ast.BinOp(current, statement.op, statement.value), names)
        return names[statement.target.id]
    if isinstance(statement, ast.Expr):
        call = statement.value
        if isinstance(call, ast.Constant) and isinstance(call.value, str):
            return None  # a docstring or a bare comment string
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print":
            values = [evaluate(arg, names) for arg in call.args if not _is_text(arg)]
            return values[-1] if values else None
    raise CalculationError(f"unsupported statement {ast.unparse(statement)!r}: use assignments and arithmetic")


def _is_text(node: ast.expr) -> bool:
    """A label a program prints beside its number: a string or an f-string."""
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


async def write_program(engine: Engine, messages: list[Message], params: GenerationParams) -> Program:
    """Ask the model for a program for the last user message and run it (`problem` says why it did not)."""
    asked = GenerationParams(max_tokens=PROGRAM_TOKENS, temperature=0.0, seed=params.seed)
    done = await complete(engine, with_system(messages, PROGRAM_PROMPT), asked)
    code = code_of(done.text)
    try:
        return Program(code, done.usage, run_program(code))
    except CalculationError as exc:
        return Program(code, done.usage, None, exc.message)
