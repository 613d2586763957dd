"""The Berkeley Function Calling Leaderboard's non-live AST categories, read from the `bfcl-eval` package and
scored by its own AST checker; this module writes no scorer of its own.

Items are `bfcl_eval/data/BFCL_v4_<category>.json` (JSON lines), answers `data/possible_answer/`, both read
directly: BFCL's `load_file` takes a file lock in a directory beside `site-packages`, which an evaluation
should not write to. Function descriptions get BFCL's own language hint
(`bfcl_eval.utils.add_language_specific_hint_to_function_doc`). `openai_tools` turns BFCL's function docs
into OpenAI `tools` the way BFCL's OpenAI handler does (`model_handler/utils.py`: `convert_to_tool`,
`_cast_to_openai_type`), reimplemented here in a few lines so no handler module is imported: a `.` in a name
becomes `_`, `dict` / `float` / `tuple` / `any` map through BFCL's `GORILLA_TO_OPENAPI`, a `float` gets
`format: float` and a sentence saying so, an untyped property becomes a string.

Loading the checker: `ast_checker.py` imports `bfcl_eval.constants.model_config` at its top, and that module
imports every model handler BFCL has (anthropic, openai, google-genai, mistralai, cohere, boto3, …): not a
small dependency. The checker reads it in one place, `convert_func_name`, to learn whether a model's calls
use `_` for `.` in function names. `checker()` therefore imports `ast_checker` while
`sys.modules["bfcl_eval.constants.model_config"]` holds a module that names one model, `CHECKER_MODEL`,
with `underscore_to_dot=True` (as BFCL configures OpenAI's function-calling models), and puts the real entry
back afterwards. Any other model name raises KeyError there, as BFCL does for an unknown model.
`bfcl_eval.utils` (its `is_empty_output` decides irrelevance) imports `filelock`, already installed here.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import sys
import types
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ember.assets.assemble import package_dir
from ember_tools.eval.cache import split

PACKAGE = "bfcl-eval==2026.3.23"
VERSION_PREFIX = "BFCL_v4"
CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
CHECKER_MODEL = "ember-eval-FC"  # the only name the checker's model table holds (see the module's text)
DEV_ITEMS = 20  # per category: the first items of the seeded order, kept for debugging, never reported


@dataclass(frozen=True)
class Case:
    """One BFCL item: its first turn's messages, its functions (BFCL's own format, with the language hint)
    and its possible answers (None for irrelevance: no call is the answer)."""

    id: str
    category: str
    messages: list[dict[str, Any]]
    functions: list[dict[str, Any]]
    answer: list[dict[str, Any]] | None


@dataclass(frozen=True)
class Verdict:
    valid: bool
    error_type: str  # "" when valid


def data_dir() -> Path:
    return package_dir("bfcl_eval", PACKAGE) / "data"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_cases(category: str) -> list[Case]:
    """Every item of `category`, in the file's order."""
    from bfcl_eval.utils import add_language_specific_hint_to_function_doc

    rows = add_language_specific_hint_to_function_doc(_lines(data_dir() / f"{VERSION_PREFIX}_{category}.json"))
    answers: dict[str, list[dict[str, Any]]] = {}
    if category != "irrelevance":
        answer_file = data_dir() / "possible_answer" / f"{VERSION_PREFIX}_{category}.json"
        answers = {row["id"]: row["ground_truth"] for row in _lines(answer_file)}
    return [
        Case(row["id"], category, row["question"][0], row["function"], answers.get(row["id"]) if answers else None)
        for row in rows
    ]


def sample(cases: list[Case], limit: int, seed: int, dev: bool = False) -> list[Case]:
    """The reported sample: `limit` items after the first DEV_ITEMS of a `seed`-shuffled order; with `dev`,
    those first DEV_ITEMS (the items one may look at while debugging). The two never overlap."""
    return split(cases, lambda c: c.id, f"{seed}:{cases[0].category if cases else ''}", DEV_ITEMS, limit, dev)


def tool_name(name: str) -> str:
    """A BFCL function name as OpenAI accepts it (`^[a-zA-Z0-9_-]{1,64}$`): dots become underscores."""
    return re.sub(r"\.", "_", name)


def _openai_types(properties: dict[str, Any]) -> dict[str, Any]:
    """BFCL's `_cast_to_openai_type` with its `GORILLA_TO_OPENAPI` mapping (in place, as BFCL does)."""
    from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI as TO_OPENAPI

    for value in properties.values():
        kind = value.get("type")
        if kind == "float":
            value["format"] = "float"
            value["description"] = value.get("description", "") + " This is a float type value."
        value["type"] = TO_OPENAPI.get(kind, "string") if kind is not None else "string"
        if value["type"] not in ("array", "object"):
            continue
        if "properties" in value:
            value["properties"] = _openai_types(value["properties"])
        elif "items" in value:
            items = value["items"]
            items["type"] = TO_OPENAPI[items["type"]]
            if items["type"] == "array" and "items" in items:
                items["items"]["type"] = TO_OPENAPI[items["items"]["type"]]
            elif items["type"] == "object" and "properties" in items:
                items["properties"] = _openai_types(items["properties"])
    return properties


def openai_tools(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BFCL's function docs as OpenAI chat-completions `tools` (BFCL's `convert_to_tool` for OpenAI)."""
    tools = []
    for function in copy.deepcopy(functions):
        function["name"] = tool_name(function["name"])
        function["parameters"]["type"] = "object"
        function["parameters"]["properties"] = _openai_types(function["parameters"]["properties"])
        tools.append({"type": "function", "function": function})
    return tools


def decoded(calls: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Calls as (name, JSON arguments) in the checker's format `[{name: {arg: value}}]`, as BFCL's OpenAI
    handler decodes them (`decode_ast`: each call's arguments through `json.loads`); ValueError if one's
    arguments are not JSON, which BFCL scores as a failed decode."""
    return [{name: json.loads(arguments)} for name, arguments in calls]


@cache
def checker() -> types.ModuleType:
    """BFCL's `ast_checker` module, imported without `constants.model_config` (see the module's text)."""
    name = "bfcl_eval.constants.model_config"
    table = types.ModuleType(name, "Stands in for BFCL's model table while ember_tools.eval.bfcl imports the checker.")
    table.MODEL_CONFIG_MAPPING = {CHECKER_MODEL: types.SimpleNamespace(underscore_to_dot=True)}  # type: ignore[attr-defined]
    real = sys.modules.get(name)
    sys.modules[name] = table
    try:
        return importlib.import_module("bfcl_eval.eval_checker.ast_eval.ast_checker")
    finally:
        if real is None:
            del sys.modules[name]
        else:
            sys.modules[name] = real


def score(case: Case, calls: list[tuple[str, str]]) -> Verdict:
    """Whether `calls` (name, JSON arguments) answer `case`, by BFCL's rules: irrelevance is right when the
    decoded calls are empty (`is_empty_output`); the other categories go through `ast_checker` after BFCL's
    format check (`is_function_calling_format_output`)."""
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.utils import is_empty_output, is_function_calling_format_output

    try:
        output = decoded(calls)
    except ValueError:
        return Verdict(case.answer is None, "" if case.answer is None else "ast_decoder:decoder_failed")
    if case.answer is None:
        return Verdict(True, "") if is_empty_output(output) else Verdict(False, "irrelevance_error:decoder_success")
    if not is_function_calling_format_output(output):
        return Verdict(False, "ast_decoder:decoder_wrong_output_format")
    result = checker().ast_checker(case.functions, output, case.answer, Language.PYTHON, case.category, CHECKER_MODEL)
    return Verdict(bool(result["valid"]), "" if result["valid"] else str(result.get("error_type", "")))
