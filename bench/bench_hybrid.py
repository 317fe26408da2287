"""Dense, lexical and hybrid search on SciFact and arcd, beside bm25s in the same run.

    python bench/bench_hybrid.py [--embedding-cache FILE.npz] [--small] [--no-typos]

SciFact (title + abstract): test nDCG@10 and recall@100 of dense (the default encoder,
exact cosine), lexical (BM25, ``index/lexical.py``), hybrid with convex fusion (its weight chosen by
``tune_hybrid`` on the train split only) and with RRF, and bm25s on the same texts.
Then speed: lexical queries per second, one query a call and in batches, against
bm25s's; hybrid latency per query; ingest of precomputed vectors with texts (the
writes, and the writes with the first search that indexes them, beside bm25s indexing
the same texts); and the time from a write's return until a lexical search has found
it. arcd (Arabic, where the English encoder fails): the
weight tuned on one half of the questions, measured on the other. SciFact with typos
(two letters swapped in every query word of four or more letters; a set where lexical
search loses): the weight tuned on typo'd train queries. Writes
bench/results/hybrid.json. Embeddings come through the cache (bench/embedding_cache.py),
so a second run embeds nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import simsearch
from embedding_cache import cache_encoder
from simsearch.encoders import DEFAULT_ENCODER
from simsearch.eval import BeirData, evaluate_rankings, load_beir

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
RESULTS = Path(__file__).parent / "results"
DEPTH = 100


def rankings(
    col: simsearch.Collection, qids: list[str], texts: list[str], **kw: Any
) -> dict[str, list[str]]:
    res = col.search(texts, k=DEPTH, **kw)
    return {q: [h.id for h in row] for q, row in zip(qids, res, strict=True)}


def quality(ranked: dict[str, list[str]], data: BeirData) -> dict[str, float]:
    m = evaluate_rankings(ranked, data.qrels)
    return {"ndcg@10": round(m["ndcg@10"], 4), "recall@100": round(m["recall@100"], 4)}


def build(folder: Path, data: BeirData, ids: list[str]) -> simsearch.Collection:
    col = simsearch.Collection.open(folder, encoder=DEFAULT_ENCODER)
    for start in range(0, len(ids), 1000):
        part = ids[start : start + 1000]
        col.add(part, texts=[data.passage(d) for d in part], progress=False)
    return col


def judged(data: BeirData) -> tuple[list[str], list[str], list[set[str]]]:
    qids = list(data.queries)
    rel = [{d for d, g in data.qrels[q].items() if g > 0} for q in qids]
    return qids, [data.queries[q] for q in qids], rel


def compare(
    col: simsearch.Collection,
    test: BeirData,
    train_texts: list[str],
    train_rel: list[set[str]],
    test_texts: list[str] | None = None,
) -> dict[str, Any]:
    """Dense, lexical, hybrid (convex tuned on the train queries, and RRF) on ``test``."""
    qids = list(test.queries)
    texts = test_texts or [test.queries[q] for q in qids]
    tuned = col.tune_hybrid(train_texts, train_rel)
    out = {
        "dense": quality(rankings(col, qids, texts), test),
        "lexical": quality(rankings(col, qids, texts, mode="lexical"), test),
        "hybrid convex": quality(rankings(col, qids, texts, mode="hybrid"), test),
        "hybrid rrf": quality(rankings(col, qids, texts, mode="hybrid", fusion="rrf"), test),
        "alpha (tuned on train)": tuned["alpha"],
        "train ndcg@10 at alpha": round(tuned["ndcg@10"], 4),
        "train: best alpha": tuned["best alpha"],
        "train: best ndcg@10": round(tuned["best ndcg@10"], 4),
        "train: better single": tuned["better single"],
        "train: gain over it": round(tuned["gain over the better single"], 4),
        "train: standard error": tuned["standard error of the gain"],
        "why": tuned["reason"],
    }
    return out


def bm25s_side(
    ids: list[str], passages: list[str], queries: list[str]
) -> tuple[Any, Any, list[list[str]]]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(passages, stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    tokens = [
        bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)[
            0
        ]
        for q in queries
    ]
    docs, _ = retriever.retrieve(tokens, k=DEPTH, show_progress=False, n_threads=1)
    return retriever, tokens, [[ids[int(d)] for d in row] for row in docs]


def per_second(n: int, fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return n / (time.perf_counter() - start)


def speed(
    col: simsearch.Collection, texts: list[str], retriever: Any, tokens: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in (10, 100):
        n = len(texts)
        # The first pass reads each hit's description from the store; a repeated query
        # finds them in memory (as the dense searches of a server's steady traffic do).
        lex_first = per_second(n, lambda k: [col.search(t, mode="lexical", k=k) for t in texts], k)
        lex_one = per_second(n, lambda k: [col.search(t, mode="lexical", k=k) for t in texts], k)
        lex_batch = per_second(n, lambda k: col.search(texts, mode="lexical", k=k), k)
        b_one = per_second(
            n, lambda k: [retriever.retrieve([t], k=k, show_progress=False) for t in tokens], k
        )
        b_batch = per_second(
            n, lambda k: retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1), k
        )
        out[f"k={k}"] = {
            "lexical qps, one query a call, first pass": round(lex_first, 1),
            "lexical qps, one query a call": round(lex_one, 1),
            "lexical qps, batched": round(lex_batch, 1),
            "bm25s qps, one query a call": round(b_one, 1),
            "bm25s qps, batched": round(b_batch, 1),
            "ratio one a call, first pass": round(lex_first / b_one, 3),
            "ratio one a call": round(lex_one / b_one, 3),
            "ratio batched": round(lex_batch / b_batch, 3),
        }
    col.search(texts[:5], mode="hybrid")  # the encoder loaded
    sample = texts[:100]
    # Queries new to the embedding cache would time the encoder; these are all cached.
    hyb = per_second(len(sample), lambda: [col.search(t, mode="hybrid", k=10) for t in sample])
    dense = per_second(len(sample), lambda: [col.search(t, k=10) for t in sample])
    out["hybrid ms per query, one a call (k=10)"] = round(1000 / hyb, 2)
    out["dense ms per query, one a call (k=10)"] = round(1000 / dense, 2)
    return out


def ingest(data: BeirData, ids: list[str], vectors: np.ndarray, tmp: Path) -> dict[str, Any]:
    """Precomputed vectors with texts, 1,000 a call: the writes alone (the lexical index is
    derived, nothing of it is written with an item), and the writes plus the first lexical
    search, which indexes every text (the catch-up); beside bm25s indexing the same texts
    and the writes of the vectors without texts. Then the time from a write's return until
    a lexical search finds it, beside a dense search after a write."""
    import bm25s
    import Stemmer

    passages = [data.passage(d) for d in ids]
    rates: dict[str, Any] = {}
    for name in ("vectors only", "vectors with texts"):
        col = simsearch.Collection.open(
            tmp / name.replace(" ", "_"), metric="cosine", dim=vectors.shape[1]
        )
        start = time.perf_counter()
        for s in range(0, len(ids), 1000):
            texts = passages[s : s + 1000] if name.endswith("texts") else None
            col.add(ids[s : s + 1000], vectors=vectors[s : s + 1000], texts=texts)
        written = time.perf_counter() - start
        rates[f"writes, {name}"] = round(len(ids) / written, 1)
        if name.endswith("texts"):
            start = time.perf_counter()
            col.search("protein", mode="lexical", k=1)
            catch_up = time.perf_counter() - start
            rates["first lexical search after them, s (indexes every text)"] = round(catch_up, 3)
            rates["writes + that search, texts/s"] = round(len(ids) / (written + catch_up), 1)
            seen = []
            for i in range(20):  # a write, then at once a lexical search, and a dense one
                word = f"zzfresh{i}"
                col.add(f"new{i}", vectors=vectors[i : i + 1], texts=[f"{word} {passages[i]}"])
                start = time.perf_counter()
                hits = col.search(word, mode="lexical", k=1)[0]
                lexical = time.perf_counter() - start
                col.add(f"dense{i}", vectors=vectors[i : i + 1])
                start = time.perf_counter()
                col.search(vectors[i], k=1)
                dense = time.perf_counter() - start
                seen.append((lexical, dense, [h.id for h in hits] == [f"new{i}"]))
            rates["found by the first search after the write"] = all(ok for *_, ok in seen)
            rates["ms from the write's return to the lexical hit (median)"] = round(
                1000 * float(np.median([t for t, _, _ in seen])), 2
            )
            rates["ms from a write's return to a dense hit (median)"] = round(
                1000 * float(np.median([t for _, t, _ in seen])), 2
            )
        col.close()
    start = time.perf_counter()
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(passages, stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    rates["bm25s tokenize + index, s"] = round(time.perf_counter() - start, 3)
    # The floor of any tokeniser that makes a Python object of each word: only splitting
    # every text into its words (``tokens.words``), no ids, no counts, no postings.
    from simsearch.index.tokens import words

    start = time.perf_counter()
    for passage in passages:
        words(passage)
    split = time.perf_counter() - start
    rates["floor: splitting every text into words, s"] = round(split, 3)
    written = len(ids) / rates["writes, vectors with texts"]
    rates["throughput kept at that floor (vs vectors with texts)"] = round(
        written / (written + split), 3
    )
    rates["write throughput kept with texts (vs vectors only)"] = round(
        rates["writes, vectors with texts"] / rates["writes, vectors only"], 3
    )
    rates["throughput kept counting the first search (vs vectors with texts)"] = round(
        rates["writes + that search, texts/s"] / rates["writes, vectors with texts"], 3
    )
    return rates


def typos(text: str, rng: random.Random) -> str:
    words = []
    for w in text.split():
        if len(w) >= 4 and w.isalpha():
            i = rng.randrange(1, len(w) - 2)
            w = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
        words.append(w)
    return " ".join(words)


def sts_paraphrases() -> BeirData:
    """A set where lexical search loses: STS-B pairs rated 4 or more (paraphrases) whose
    two sentences share at most a third of their stemmed content words; each first
    sentence is a query, its pair the one relevant document, among the second sentences
    of every STS-B pair (8,627, most of them sharing words such as "man" or "playing")."""
    from simsearch.index.tokens import Vocabulary, query_words

    vocab = Vocabulary()

    def terms(sentence: str) -> set[str]:
        return set(vocab.stems(query_words(sentence)))

    corpus: dict[str, tuple[str, str]] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for split in ("train", "dev", "test"):
        with (DATA / "stsbenchmark" / f"sts-{split}.csv").open(encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                cols = line.rstrip("\n").split("\t")
                if len(cols) < 7:
                    continue
                score, first, second = float(cols[4]), cols[5], cols[6]
                doc = f"{split}-{n}"
                corpus[doc] = ("", second)
                a, b = terms(first), terms(second)
                if score >= 4.0 and a and b and len(a & b) / len(a | b) <= 1 / 3:
                    queries[f"q-{doc}"] = first
                    qrels[f"q-{doc}"] = {doc: 1}
    return BeirData(corpus, queries, qrels)


def halves(col: simsearch.Collection, data: BeirData) -> dict[str, Any]:
    """The weight tuned on one half of the queries, measured on the other, both ways."""
    qs = list(data.queries)
    parts = (qs[: len(qs) // 2], qs[len(qs) // 2 :])
    out = {}
    for name, (tune_on, measure_on) in {
        "tuned on half 1, measured on half 2": parts,
        "tuned on half 2, measured on half 1": parts[::-1],
    }.items():
        part = BeirData(
            data.corpus,
            {q: data.queries[q] for q in measure_on},
            {q: data.qrels[q] for q in measure_on},
        )
        rel = [{d for d, g in data.qrels[q].items() if g > 0} for q in tune_on]
        out[name] = compare(col, part, [data.queries[q] for q in tune_on], rel)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedding-cache", type=Path, default=Path(".data/embeddings-minilm.npz"))
    parser.add_argument(
        "--small", action="store_true", help="the first 1,000 documents, 50 queries"
    )
    parser.add_argument(
        "--no-typos", action="store_true", help="leave out SciFact with typos (a shorter run)"
    )
    args = parser.parse_args()
    cache_encoder(DEFAULT_ENCODER, args.embedding_cache)
    out: dict[str, Any] = {"encoder": DEFAULT_ENCODER, "depth": DEPTH}
    tmp = Path(tempfile.mkdtemp())
    try:
        test, train = load_beir(DATA / "scifact", "test"), load_beir(DATA / "scifact", "train")
        ids = list(test.corpus)
        if args.small:
            keep = set(ids[:1000])
            ids = ids[:1000]
            for d in (test, train):
                for q in [q for q in d.queries if not set(d.qrels[q]) & keep][:None]:
                    del d.queries[q]
                for q in list(d.queries)[50:]:
                    del d.queries[q]
        col = build(tmp / "scifact", test, ids)
        _, train_texts, train_rel = judged(train)
        sci = compare(col, test, train_texts, train_rel)
        qids, texts, _ = judged(test)
        retriever, tokens, b_rows = bm25s_side(ids, [test.passage(d) for d in ids], texts)
        sci["bm25s"] = quality(dict(zip(qids, b_rows, strict=True)), test)
        out["scifact"] = sci
        print("scifact", json.dumps(sci), flush=True)
        out["speed"] = speed(col, texts, retriever, tokens)
        print("speed", json.dumps(out["speed"]), flush=True)
        if not args.no_typos:
            rng = random.Random(0)
            noisy_train = [typos(t, rng) for t in train_texts]
            noisy_test = [typos(test.queries[q], rng) for q in qids]
            out["scifact with typos"] = compare(col, test, noisy_train, train_rel, noisy_test)
            print("typos", json.dumps(out["scifact with typos"]), flush=True)
        vectors = np.stack([it.vector for it in col.get(ids, include=["vector"])])
        col.close()
        out["ingest, texts/s"] = ingest(test, ids, vectors, tmp)
        print("ingest", json.dumps(out["ingest, texts/s"]), flush=True)
        arcd = load_beir(DATA / "arcd", "test")
        acol = build(tmp / "arcd", arcd, list(arcd.corpus))
        out["arcd"] = halves(acol, arcd)
        acol.close()
        print("arcd", json.dumps(out["arcd"]), flush=True)
        sts = sts_paraphrases()
        scol = build(tmp / "sts", sts, list(sts.corpus))
        out["sts-b paraphrases"] = {"queries": len(sts.queries), "documents": len(sts.corpus)}
        out["sts-b paraphrases"].update(halves(scol, sts))
        scol.close()
        print("sts-b", json.dumps(out["sts-b paraphrases"]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    name = "hybrid-small.json" if args.small else "hybrid.json"
    (RESULTS / name).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
