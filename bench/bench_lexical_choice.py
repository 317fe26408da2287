"""Three candidate lexical indexes on SciFact (title + abstract), in one run.

    python bench/bench_lexical_choice.py

SQLite FTS5 (porter unicode61, query terms OR-joined, English stopwords dropped from
the query, ``bm25()``), bm25s (Lucene BM25, English stopwords, Snowball stemmer) and
tantivy (default tokenizer with an English stemmer, its BM25). For each: test nDCG@10
and recall@100, queries per second one query a call at depth 100, the time to build
over the corpus, and the time to add 100 more documents to the built index. Writes
bench/results/lexical_choice.json.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from simsearch.eval import evaluate_rankings, load_beir
from simsearch.index.tokens import STOPWORDS

SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "scifact"
RESULTS = Path(__file__).parent / "results"
DEPTH = 100


def fts5(ids: list[str], texts: list[str], queries: list[str]) -> dict[str, Any]:
    conn = sqlite3.connect(":memory:")
    start = time.perf_counter()
    conn.execute(
        "CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')"
    )
    conn.executemany("INSERT INTO t (rowid, text) VALUES (?, ?)", enumerate(texts))
    build = time.perf_counter() - start
    start = time.perf_counter()
    with conn:
        conn.executemany(
            "INSERT INTO t (rowid, text) VALUES (?, ?)",
            [(len(texts) + i, texts[i]) for i in range(100)],
        )
    add = time.perf_counter() - start
    conn.execute("DELETE FROM t WHERE rowid >= ?", (len(texts),))

    def match(q: str) -> str:
        words = [w for w in re.findall(r"\w+", q.lower()) if w not in STOPWORDS]
        return " OR ".join(f'"{w}"' for w in words)

    start = time.perf_counter()
    ranked = [
        [ids[r] for (r,) in conn.execute(
            "SELECT rowid FROM t WHERE t MATCH ? ORDER BY rank LIMIT ?", (match(q), DEPTH)
        )]
        for q in queries
    ]  # fmt: skip
    qps = len(queries) / (time.perf_counter() - start)
    return {"ranked": ranked, "qps": qps, "build_s": build, "add100_s": add}


def bm25s_side(ids: list[str], texts: list[str], queries: list[str]) -> dict[str, Any]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    start = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)  # fmt: skip
    build = time.perf_counter() - start
    tokens = [bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False,
                             return_ids=False)[0] for q in queries]  # fmt: skip
    start = time.perf_counter()
    ranked = []
    for q in tokens:
        docs, _ = retriever.retrieve([q], k=DEPTH, show_progress=False)
        ranked.append([ids[int(d)] for d in docs[0]])
    qps = len(queries) / (time.perf_counter() - start)
    start = time.perf_counter()
    docs, _ = retriever.retrieve(tokens, k=DEPTH, show_progress=False, n_threads=1)
    batch_qps = len(queries) / (time.perf_counter() - start)
    # No incremental update: adding documents means indexing the corpus again.
    start = time.perf_counter()
    bm25s.BM25().index(
        bm25s.tokenize(texts + texts[:100], stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    add = time.perf_counter() - start
    return {"ranked": ranked, "qps": qps, "batch_qps": batch_qps, "build_s": build,
            "add100_s": add}  # fmt: skip


def tantivy_side(ids: list[str], texts: list[str], queries: list[str]) -> dict[str, Any]:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("row", stored=True, indexed=True)
    builder.add_text_field("text", stored=False, tokenizer_name="en_stem")
    schema = builder.build()
    folder = tempfile.mkdtemp()
    index = tantivy.Index(schema, path=folder)
    start = time.perf_counter()
    writer = index.writer(heap_size=64_000_000, num_threads=1)
    for i, text in enumerate(texts):
        writer.add_document(tantivy.Document(row=i, text=text))
    writer.commit()
    writer.wait_merging_threads()
    build = time.perf_counter() - start
    start = time.perf_counter()
    writer = index.writer(heap_size=64_000_000, num_threads=1)
    for i in range(100):
        writer.add_document(tantivy.Document(row=len(texts) + i, text=texts[i]))
    writer.commit()
    writer.wait_merging_threads()
    add = time.perf_counter() - start
    index.reload()
    searcher = index.searcher()

    def parsed(q: str) -> Any:
        words = [w for w in re.findall(r"\w+", q.lower()) if w not in STOPWORDS]
        return index.parse_query(" OR ".join(words) or "nothing", ["text"])

    start = time.perf_counter()
    ranked = []
    for q in queries:
        hits = searcher.search(parsed(q), DEPTH).hits
        ranked.append([ids[r] for _, a in hits if (r := searcher.doc(a)["row"][0]) < len(ids)])
    qps = len(queries) / (time.perf_counter() - start)
    return {"ranked": ranked, "qps": qps, "build_s": build, "add100_s": add}


def main() -> None:
    data = load_beir(SCIFACT, "test")
    ids = list(data.corpus)
    texts = [data.passage(d) for d in ids]
    qids = list(data.queries)
    queries = [data.queries[q] for q in qids]
    out: dict[str, Any] = {"documents": len(ids), "queries": len(qids), "depth": DEPTH}
    for name, run in (("fts5", fts5), ("bm25s", bm25s_side), ("tantivy", tantivy_side)):
        measured = run(ids, texts, queries)
        scores = evaluate_rankings(dict(zip(qids, measured.pop("ranked"), strict=True)),
                                   data.qrels)  # fmt: skip
        measured.update(ndcg10=scores["ndcg@10"], recall100=scores["recall@100"])
        out[name] = {k: round(v, 4) for k, v in measured.items()}
        print(name, out[name], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lexical_choice.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
