"""`ember eval health grounded`: questions and key facts from real index entries, the fact matcher, the
citation check, the resumable cache and the report on scripted systems; then the whole run on a tiny real
index, through the Pipeline on the fake engine and on the real tiny model (SmolLM2-135M)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ember import registry
from ember.config import Settings
from ember.engines.embeddings import Embedders
from ember.engines.fake import FakeEngine
from ember.medical.knowledge import Entry, KnowledgeIndex, build_index, disease_text, icd10cm_entries
from ember.medical.service import Knowledge
from ember.modes.health import SOURCES_HEADING, system_message
from ember.services import Services
from ember.serving.pipeline import Pipeline
from ember.store.sql import SqlStore
from ember_tools.eval import grounded_report as report
from ember_tools.eval.cache import Cache
from ember_tools.eval.grounded import PlainSystem, evaluate, request_body, run
from ember_tools.eval.health_facts import (
    DEV_ITEMS,
    Question,
    code_question,
    features_question,
    questions,
    sample,
    states,
    words,
)
from ember_tools.eval.systems import Reply, cache_key
from ember_tools.marked import replace_block

from .conftest import TINY, make_settings

ICD = list(itertools.islice(icd10cm_entries(), 30))  # A00 to A04.5: five categories and their subdivisions
MARFAN = ["Arachnodactyly", "Tall stature", "Ectopia lentis", "Aortic root aneurysm", "Marfan syndrome"]


def disease(entry_id: str, name: str, features: list[str]) -> Entry:
    return Entry(entry_id, "Human Phenotype Ontology", name, disease_text(name, entry_id.split(":")[0], features), "u")


DISEASES = [
    disease("ORPHA:558", "Marfan syndrome", MARFAN),
    disease("OMIM:154700", "Marfan syndrome type 1", ["Arachnodactyly", "Myopia", "Scoliosis"]),
    disease("ORPHA:1", "Tiny disease", ["Fever", "Rash"]),  # two facts: too few to ask about
]


def entry(entry_id: str) -> Entry:
    return next(e for e in [*ICD, *DISEASES] if e.id == entry_id)


def test_an_icd_category_becomes_a_code_question_with_its_terms_as_facts() -> None:
    cholera = code_question(entry("ICD-10-CM:A00"))
    assert cholera is not None and cholera.text == "What does ICD-10 code A00 cover?"
    assert cholera.id == "code:ICD-10-CM:A00"
    # the description and the subdivisions; "Cholera, unspecified" says no more than "Cholera": dropped
    assert [f.text for f in cholera.facts] == [
        "Cholera",
        "Cholera due to Vibrio cholerae 01, biovar cholerae",
        "Cholera due to Vibrio cholerae 01, biovar eltor",
    ]
    assert cholera.facts[2].words == {"cholera", "due", "vibrio", "cholerae", "01", "biovar", "eltor"}
    salmonella = code_question(entry("ICD-10-CM:A02"))
    assert salmonella is not None and salmonella.facts[1].text.startswith("infection or foodborne intoxication")
    assert code_question(entry("ICD-10-CM:A00.0")) is None  # a subdivision, not a category
    assert code_question(entry("ORPHA:558")) is None


def test_a_disease_becomes_a_features_question_with_its_features_as_facts() -> None:
    marfan = features_question(entry("ORPHA:558"))
    assert marfan is not None and marfan.text == "What are the typical features of Marfan syndrome?"
    # "Marfan syndrome" as a feature only repeats the question: not a fact
    assert [f.text for f in marfan.facts] == MARFAN[:4]
    assert features_question(entry("ORPHA:1")) is None  # fewer than three facts
    assert features_question(entry("ICD-10-CM:A00")) is None
    by_template = questions([*ICD, *DISEASES])
    assert [q.entry_id for q in by_template["features"]] == ["OMIM:154700", "ORPHA:558"]
    assert [q.entry_id for q in by_template["code"]] == [f"ICD-10-CM:A0{i}" for i in range(5)]


def test_words_are_normalised_content_words() -> None:
    assert words("Abnormalities of the Heart's valves (s), unspecified") == {"abnormality", "heart", "valve"}
    assert words("Ketoacidosis; illness; mellitus; X-linked") == {"ketoacidosis", "illness", "mellitus", "x", "linked"}


def test_a_fact_is_stated_when_all_its_content_words_are_there() -> None:
    marfan = features_question(entry("ORPHA:558"))
    assert marfan is not None
    said = words("Tall STATURE is common, with long fingers (arachnodactyly); the lens may dislocate (ectopia).")
    stated = [f.text for f in marfan.facts if states(said, f)]
    assert stated == ["Arachnodactyly", "Tall stature"]  # "ectopia" without "lentis" is not the fact
    assert states(words("aneurysms of the aortic roots"), marfan.facts[3])  # plurals, any order
    assert not states(words("an aortic aneurysm"), marfan.facts[3])


def test_the_reported_sample_never_holds_the_dev_slice_and_alternates_templates() -> None:
    by_template = {
        "features": [Question(f"features:{i}", "features", str(i), "?", ()) for i in range(40)],
        "code": [Question(f"code:{i}", "code", str(i), "?", ()) for i in range(40)],
    }
    reported, dev = sample(by_template, 20, 0), sample(by_template, 20, 0, dev=True)
    assert len(reported) == 20 and len(dev) == 2 * DEV_ITEMS
    assert not {q.id for q in reported} & {q.id for q in dev}
    assert [q.template for q in reported[:4]] == ["features", "code", "features", "code"]
    assert [q.id for q in sample(by_template, 6, 0)] == [q.id for q in reported[:6]]  # a prefix, same seed
    assert [q.id for q in sample(by_template, 20, 1)] != [q.id for q in reported]


def record(text: str, citations: list[tuple[int, str]], sources: dict[str, str] | None = None) -> dict[str, Any]:
    """A cache record of an answer `text` that returned `citations` (the sources' texts from the entries)."""
    sources = {i: entry(i).text for _, i in citations} if sources is None else sources
    return {"text": text, "citations": [list(c) for c in citations], "sources": sources, "error": ""}


def test_a_stated_fact_is_held_when_a_source_the_answer_cites_holds_it() -> None:
    cholera = code_question(entry("ICD-10-CM:A00"))
    assert cholera is not None
    both = [(1, "ICD-10-CM:A01"), (2, "ICD-10-CM:A00")]  # A01 is typhoid: it holds none of cholera's facts
    text = "A00 is cholera [2], due to Vibrio cholerae 01, biovar eltor [1]."  # states all three facts
    assert report.score(cholera, record(text, both)) == report.Score(3, 3, 3, 3, True)
    # citing [1] only, ember-health returns [1] only
    assert report.score(cholera, record(text.replace("[2]", ""), both[:1])) == report.Score(3, 3, 0, 0, True)
    # citing none by number, ember-health cites every source it was given: held, but not by number
    assert report.score(cholera, record(text.replace("[2]", "").replace("[1]", ""), both)) == report.Score(
        3, 3, 3, 0, False
    )
    vague = record("Cholera due to Vibrio cholerae 01, biovar cholerae [1].", [(1, "X")], {"X": "Cholera is rare."})
    assert report.score(cholera, vague) == report.Score(3, 2, 1, 1, True)  # the source holds "Cholera" only
    # the list of sources after the answer is not the answer's words
    listed = "It is an infection." + SOURCES_HEADING + "[2] A00 Cholera due to Vibrio cholerae 01, biovar eltor"
    assert report.score(cholera, record(listed, both)) == report.Score(3, 0, 0, 0, False)
    assert report.score(cholera, record("Cholera [7].", both)) == report.Score(3, 1, 1, 0, False)  # no source 7


class Scripted:
    """A system that answers every question with `text`, citing `citations`; counts what it was asked."""

    def __init__(self, name: str, text: str, citations: list[tuple[int, str]]) -> None:
        self.name, self.fingerprint, self.text, self.citations = name, "scripted", text, citations
        self.asked: list[dict[str, Any]] = []

    async def ask(self, body: dict[str, Any]) -> Reply:
        self.asked.append(body)
        return Reply([], self.text, 100, 20, 0.5, "", self.citations)


async def test_the_cache_resumes_a_run_and_the_report_pairs_it(tmp_path: Path) -> None:
    chosen = [q for q in (code_question(entry("ICD-10-CM:A00")), features_question(entry("ORPHA:558"))) if q]
    path, source = tmp_path / "items.jsonl", lambda i: entry(i).text
    plain = Scripted("plain", "Cholera, arachnodactyly.", [])
    health = Scripted("ember-health", "Cholera due to Vibrio cholerae 01, biovar eltor; tall stature [1].", [])
    health.citations = [(1, "ORPHA:558")]
    await run([plain, health], chosen, Cache(path), 64, source)
    assert len(plain.asked) == len(health.asked) == 2
    with path.open("a") as f:
        f.write('{"key": "torn')  # a run killed while writing
    before, again = path.read_text(), Scripted("ember-health", "", [])
    await run([again], chosen, Cache(path), 64, source)
    assert again.asked == [] and path.read_text() == before  # nothing asked twice
    await run([again], chosen, Cache(path), 32, source)  # another body: another key
    assert len(again.asked) == 2

    first = json.loads(before.splitlines()[1])
    assert first["system"] == "ember-health" and first["sources"] == {"ORPHA:558": entry("ORPHA:558").text}
    keys = {s.name: {q.id: cache_key(s, q.id, request_body(q, 64)) for q in chosen} for s in (plain, health)}
    summary = report.summarize(chosen, keys, Cache(path).records)
    pooled = summary["overall"]["systems"]
    # plain: "Cholera" and "Arachnodactyly"; ember-health: A00's three facts and "Tall stature", only the last
    # held by the source it cites (Marfan's entry)
    assert (pooled["plain"]["stated"], pooled["ember-health"]["stated"], pooled["ember-health"]["held"]) == (2, 4, 1)
    assert summary["templates"]["code"]["systems"]["ember-health"]["held"] == 0  # its source is Marfan's
    paired = summary["overall"]["paired"]
    assert paired["ratio"] == 2.0 and paired["ratio_ci95"] == [1.0, 3.0] and paired["items"] == 2
    assert paired["difference_per_answer"] == 1.0
    assert summary["goals"] == {
        "facts_ratio_at_least_2": True,
        "facts_ratio_ci_above_2": False,
        "held_at_least_90": False,
        "held_by_number_at_least_90": False,
    }
    table = report.markdown(summary)
    assert "| all (pooled) | ember-health | 2/2 | 4/7 = 57.1% [" in table
    assert "| all (pooled) | 2.00x [1.00, 3.00] |" in table


def test_the_section_is_written_between_its_markers_and_says_when_a_run_is_partial(tmp_path: Path) -> None:
    chosen = [q for q in (code_question(entry("ICD-10-CM:A00")), code_question(entry("ICD-10-CM:A01"))) if q]
    keys = {"plain": {q.id: q.id for q in chosen}, "ember-health": {q.id: "h" + q.id for q in chosen}}
    records = {chosen[0].id: record("Cholera.", []), "h" + chosen[0].id: record("", [])}
    for r in records.values():
        r |= {"seconds": 1.0, "prompt_tokens": 1, "completion_tokens": 1}
    summary = report.summarize(chosen, keys, records)
    assert summary["overall"]["paired"]["ratio"] == 0.0 and summary["goals"]["held_at_least_90"] is None
    meta = {"command": "ember eval health grounded", "date": "2026-12-04", "model": "m.gguf", "role": "chat"}
    meta |= {"cores": 2, "index": "knowledge-x", "max_tokens": 64, "seed": 0, "limit": 2, "dev_items": DEV_ITEMS}
    doc = tmp_path / "health.md"
    doc.write_text("# Health\n\nProse.\n")
    for _ in range(2):
        replace_block(doc, report.BEGIN, report.END, report.document(meta, summary), "# Health\n")
    text = doc.read_text()
    assert text.startswith("# Health\n\nProse.\n\n" + report.BEGIN) and text.count(report.END) == 1
    assert "**Partial run**: 1 of 2 questions answered by both systems" in text
    assert "- ember-health states at least twice the key facts plain states: no (0.00x [" in text


def test_the_dev_slice_is_never_written() -> None:
    from ember_tools.eval.grounded import grounded

    result = CliRunner().invoke(grounded, ["--dev", "--json", "x.json"])
    assert result.exit_code == 2 and "the dev slice is never reported" in result.output


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding a health index of 30 real ICD-10-CM entries and three diseases."""
    cache = tmp_path_factory.mktemp("grounded") / "cache"
    knowledge = Knowledge(Embedders(cache), build=False)
    build_index(knowledge.target(), knowledge.embedder(), sources={"few": lambda: iter([*ICD, *DISEASES])})
    return cache


def settings_on(tiny_index: Path, tmp_path: Path, chat: dict[str, Any]) -> Settings:
    return make_settings(tmp_path, chat=chat).model_copy(update={"cache_dir": tiny_index})


async def test_plain_asks_ember_healths_role_with_its_instructions_and_no_sources(
    tiny_index: Path, tmp_path: Path
) -> None:
    registry.load_plugins()
    settings = settings_on(tiny_index, tmp_path, {"engine": "fake", "model": "f", "options": {"echo_prompt": True}})
    pipeline = Pipeline(Services.open(settings, SqlStore(f"sqlite:///{tmp_path / 'eval.db'}")))
    try:
        cholera = code_question(entry("ICD-10-CM:A00"))
        assert cholera is not None
        await PlainSystem(pipeline, settings).ask(request_body(cholera, 500))
        engine = await pipeline.services.engines.get("chat")
        assert isinstance(engine, FakeEngine)
        (messages, params), *_ = engine.calls
        assert messages[0] == system_message([]) and messages[1].content == cholera.text
        assert params.temperature == 0.0 and params.seed == 0 and params.max_tokens == 500
    finally:
        await pipeline.services.aclose()


async def test_a_run_through_the_pipeline_on_an_engine_that_repeats_its_prompt(
    tiny_index: Path, tmp_path: Path
) -> None:
    registry.load_plugins()
    settings = settings_on(tiny_index, tmp_path, {"engine": "fake", "model": "f", "options": {"echo_prompt": True}})
    opts = {"limit": 4, "seed": 0, "max_tokens": 2000, "shard": "0/1", "dev": True, "run": True, "concurrency": 3}
    summary = await evaluate(settings, opts, Cache(tmp_path / "items.jsonl"))
    records = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert len(records) == 8 and {r["concurrency"] for r in records} == {3}
    assert summary["overall"]["sample"] == 4
    plain, health = summary["overall"]["systems"]["plain"], summary["overall"]["systems"]["ember-health"]
    assert plain["items"] == health["items"] == 4 and plain["errors"] == health["errors"] == 0
    # repeating its sources, ember-health states what they hold and cites them all ("[1]" … "[4]"); for the
    # code question on A01 the entry with that code comes first (`knowledge.code_ranks`), so "Typhoid and
    # paratyphoid fevers" is held by one source (by meaning alone it was given A01.0 and A01.1, not A01:
    # stated from two sources together, held by neither, 14/13/13)
    assert plain["stated"] == 0 and health["answers_citing_by_number"] == 4
    assert (health["stated"], health["held"], health["held_by_number"]) == (15, 15, 15)
    assert summary["overall"]["paired"]["ratio"] is None


async def test_a_run_on_the_real_tiny_model(tiny_index: Path, tmp_path: Path) -> None:
    registry.load_plugins()
    settings = settings_on(tiny_index, tmp_path, {**TINY, "ctx_size": 2048})
    opts = {"limit": 2, "seed": 0, "max_tokens": 48, "shard": "0/1", "dev": True, "run": True}
    path = tmp_path / "items.jsonl"
    summary = await evaluate(settings, opts, Cache(path))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["system"] for r in records] == ["plain", "ember-health"] * 2 and not any(r["error"] for r in records)
    index = KnowledgeIndex(Knowledge(Embedders(tiny_index)).target(), Embedders(tiny_index).get())
    try:
        for r in (r for r in records if r["system"] == "ember-health"):
            assert SOURCES_HEADING in r["text"] and r["citations"]
            assert all(r["sources"][i] == index.get(i).text for _, i in r["citations"])  # type: ignore[union-attr]
    finally:
        index.close()
    plain, health = records[0::2], records[1::2]
    assert all(h["prompt_tokens"] > p["prompt_tokens"] + 100 for p, h in zip(plain, health, strict=True))  # sources
    assert summary["overall"]["systems"]["ember-health"]["items"] == 2
    again = await evaluate(settings, opts, Cache(path))  # everything is cached: nothing asked, same numbers
    assert len(path.read_text().splitlines()) == 4 and again == summary
