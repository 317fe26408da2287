"""Lexical and hybrid search among adds, upserts, text updates, deletes and reopens, driven
by Hypothesis against references written here: BM25 as SQLite FTS5 defines it, and both
fusions over the exact dense scores."""

from __future__ import annotations

import math
import shutil
import tempfile
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import simsearch
from oracle import close
from simsearch.encoders.base import register_encoder

# Words the Porter stemmer leaves as they are, so the reference needs no stemmer; "the" is
# a stopword (counted in a text's length, never looked for); capitals fold.
WORDS = ["cat", "dog", "red", "sun", "box", "tree", "moon", "star", "Fish", "the"]
IDS = st.sampled_from([f"id{i}" for i in range(16)] + ["ünï"])
TEXT = st.lists(st.sampled_from(WORDS), min_size=1, max_size=7).map(" ".join)
MAYBE_TEXT = st.one_of(st.none(), TEXT)  # None: a vector-only item
META = st.fixed_dictionaries({"color": st.sampled_from(["red", "blue"]), "n": st.integers(0, 3)})
WHERE = st.one_of(
    st.none(),
    st.builds(lambda c: {"color": c}, st.sampled_from(["red", "blue"])),
    st.builds(lambda n: {"n": {"$gte": n}}, st.integers(0, 3)),
)
K1, B, RRF_K = 1.2, 0.75, 60


def letters(text: str) -> np.ndarray:
    """The test encoder: letter counts over a floor of 0.3, so that texts of other words,
    or of the same words in other numbers, point in clearly different directions (a
    near-tie in float32 could order two items either way)."""
    out = np.full(26, 0.3, dtype=np.float32)
    for ch in text.lower():
        if "a" <= ch <= "z":
            out[ord(ch) - 97] += 1
    return out


class Letters:
    name, version, dim = "letters-stateful", "1", 26

    def encode(self, texts: list[str], *, kind: str = "passage", progress: object = None) -> Any:
        return np.stack([letters(t) for t in texts]) if texts else np.zeros((0, 26), np.float32)


register_encoder("letters-stateful", Letters)


def bm25(texts: dict[str, str], query: str) -> dict[str, float]:
    """FTS5's bm25() over the live texts: idf = ln((N - n + 0.5) / (n + 0.5)), at least
    1e-6; term weight tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)); distinct query
    words, stopwords dropped."""
    docs = {i: t.lower().split() for i, t in texts.items()}
    n_docs = len(docs)
    if not n_docs:
        return {}
    avgdl = sum(len(d) for d in docs.values()) / n_docs
    words = dict.fromkeys(w for w in query.lower().split() if w != "the")
    out: dict[str, float] = {}
    for w in words:
        hits = sum(1 for d in docs.values() if w in d)
        idf = math.log((n_docs - hits + 0.5) / (hits + 0.5))
        idf = idf if idf > 0 else 1e-6
        for i, d in docs.items():
            tf = d.count(w)
            if tf:
                weight = tf * (K1 + 1) / (tf + K1 * (1 - B + B * len(d) / avgdl))
                out[i] = out.get(i, 0.0) + idf * weight
    return out


def minmax(values: dict[str, float]) -> dict[str, float]:
    if not values:
        return {}
    low, high = min(values.values()), max(values.values())
    return {i: 1.0 if high == low else (v - low) / (high - low) for i, v in values.items()}


class LexicalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.col = simsearch.Collection.open(self.dir + "/c", encoder="letters-stateful")
        # id -> (vector, text or None, metadata), in the store's row order
        self.items: dict[str, tuple[np.ndarray, str | None, dict[str, Any]]] = {}

    def teardown(self) -> None:
        self.col.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _write(
        self, ids: list[str], texts: list[str | None], metas: list[dict[str, Any]], upsert: bool
    ) -> None:
        write = self.col.upsert if upsert else self.col.add
        for i, t, m in zip(ids, texts, metas, strict=True):
            # A vector-only item points at a letter of its own: no near-ties with others.
            own = chr(97 + (int(i[2:]) if i[2:].isdigit() else 16))
            vector = letters(t) if t is not None else letters(own + own)
            if t is None:
                write(i, vectors=[vector], metadata=m)
            else:
                write(i, texts=[t], metadata=m)
            self.items[i] = (vector, t, m)

    @rule(data=st.data(), n=st.integers(1, 4))
    def add(self, data: st.DataObject, n: int) -> None:
        ids = data.draw(st.lists(IDS, min_size=n, max_size=n, unique=True))
        ids = [i for i in ids if i not in self.items]
        texts = data.draw(st.lists(MAYBE_TEXT, min_size=len(ids), max_size=len(ids)))
        metas = data.draw(st.lists(META, min_size=len(ids), max_size=len(ids)))
        self._write(ids, texts, metas, upsert=False)

    @rule(data=st.data(), n=st.integers(1, 4))
    def upsert(self, data: st.DataObject, n: int) -> None:
        ids = data.draw(st.lists(IDS, min_size=n, max_size=n, unique=True))
        texts = data.draw(st.lists(MAYBE_TEXT, min_size=n, max_size=n))
        metas = data.draw(st.lists(META, min_size=n, max_size=n))
        self._write(ids, texts, metas, upsert=True)

    @rule(data=st.data())
    def update_text(self, data: st.DataObject) -> None:
        if not self.items:
            return
        i = data.draw(st.sampled_from(sorted(self.items)))
        text = data.draw(TEXT)
        self.col.update(i, texts=[text])  # embedded again: the vector follows the text
        _, _, meta = self.items[i]
        self.items[i] = (letters(text), text, meta)

    @rule(ids=st.lists(IDS, min_size=1, max_size=3, unique=True))
    def delete(self, ids: list[str]) -> None:
        assert self.col.delete(ids) == sum(i in self.items for i in ids)
        for i in ids:
            self.items.pop(i, None)

    @rule()
    def reopen(self) -> None:
        self.col.close()
        self.col = simsearch.Collection.open(self.dir + "/c")

    def _allowed(self, where: dict[str, Any] | None) -> list[str]:
        return [
            i
            for i, (_, _, m) in self.items.items()
            if where is None
            or all(
                m[f] >= c["$gte"] if isinstance(c, dict) else m[f] == c for f, c in where.items()
            )
        ]

    def _no_texts(self) -> bool:
        return all(t is None for _, t, _ in self.items.values())

    @rule(query=TEXT, k=st.integers(1, 8), where=WHERE)
    def lexical_search(self, query: str, k: int, where: dict[str, Any] | None) -> None:
        if self._no_texts():
            if self.items and query.lower().split() != ["the"] * len(query.split()):
                with pytest.raises(simsearch.InvalidArgumentError, match="holds none"):
                    self.col.search(query, mode="lexical", k=k, where=where)
            return
        texts = {i: t for i, (_, t, _) in self.items.items() if t is not None}
        scores = bm25(texts, query)
        allowed = [i for i in self._allowed(where) if i in scores]
        order = list(self.items)
        want = sorted(allowed, key=lambda i: (-scores[i], order.index(i)))[:k]
        got = self.col.search(query, mode="lexical", k=k, where=where)[0]
        assert len(got) == len(want)
        for h, w in zip(got, want, strict=True):
            assert h.id in scores, f"{h.id} holds no query word"
            assert close(h.score, scores[w])
            assert close(h.score, scores[h.id])
            assert h.lexical_score == h.score
            assert h.dense_score is None

    @rule(query=TEXT, k=st.integers(1, 8), where=WHERE, fusion=st.sampled_from(["convex", "rrf"]),
          alpha=st.sampled_from([0.0, 0.3, 0.5, 1.0]))  # fmt: skip
    def hybrid_search(
        self, query: str, k: int, where: dict[str, Any] | None, fusion: str, alpha: float
    ) -> None:
        if self._no_texts():
            return
        allowed = self._allowed(where)
        texts = {i: t for i, (_, t, _) in self.items.items() if t is not None}
        lexical = bm25(texts, query)
        q = letters(query).astype(np.float64)
        q /= np.linalg.norm(q)
        dense = {
            i: float(q @ (v / np.linalg.norm(v)))
            for i, (v, _, _) in self.items.items()
            if i in allowed
        }
        order = list(self.items)
        if fusion == "convex":
            dn = minmax(dense)
            ln = minmax({i: lexical[i] for i in allowed if i in lexical})
            fused = {i: alpha * dn[i] + (1 - alpha) * ln.get(i, 0.0) for i in allowed}
        else:
            # Items with equal dense scores (as two vector-only items can have exactly, in
            # exact arithmetic) may take their ranks in either order: each item's dense
            # rank is known to lie within its group of equal scores.
            by_dense = sorted(allowed, key=lambda i: (-dense[i], order.index(i)))
            first: dict[float, int] = {}
            last: dict[float, int] = {}
            for r, i in enumerate(by_dense):
                key = round(dense[i], 5)
                first.setdefault(key, r)
                last[key] = r
            by_lexical = sorted(
                (i for i in allowed if i in lexical), key=lambda i: (-lexical[i], order.index(i))
            )
            # Equal BM25 scores (the same words in texts of one length) tie the same way.
            lex_first: dict[float, int] = {}
            lex_last: dict[float, int] = {}
            for r, i in enumerate(by_lexical):
                key = round(lexical[i], 5)
                lex_first.setdefault(key, r)
                lex_last[key] = r

            def lex(i: str, ranks: dict[float, int]) -> float:
                return 1 / (RRF_K + 1 + ranks[round(lexical[i], 5)]) if i in lexical else 0.0

            high = {
                i: 1 / (RRF_K + 1 + first[round(dense[i], 5)]) + lex(i, lex_first) for i in allowed
            }
            low = {
                i: 1 / (RRF_K + 1 + last[round(dense[i], 5)]) + lex(i, lex_last) for i in allowed
            }
            fused = high
        got = self.col.search(query, mode="hybrid", fusion=fusion, alpha=alpha, k=k, where=where)[0]
        assert len(got) == min(k, len(allowed))
        assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
        if fusion == "convex":
            want = sorted(allowed, key=lambda i: (-fused[i], order.index(i)))[:k]
        for j, h in enumerate(got):
            assert h.id in allowed
            if fusion == "convex":
                assert math.isclose(h.score, fused[want[j]], rel_tol=1e-4, abs_tol=1e-4)
                assert math.isclose(h.score, fused[h.id], rel_tol=1e-4, abs_tol=1e-4)
            else:
                assert low[h.id] - 1e-6 <= h.score <= high[h.id] + 1e-6
            assert close(h.dense_score or 0.0, dense[h.id])
            assert close(h.lexical_score or 0.0, lexical.get(h.id, 0.0))

    @invariant()
    def counts_agree(self) -> None:
        assert len(self.col) == len(self.items)


TestLexicalCollection = LexicalMachine.TestCase
# Derandomized, so a run's outcome does not depend on luck. The seed
# 296013432560874381715065783281237079301 (randomized) found equal dense scores a float32
# step apart stretched by min-max to 0 and 1 (test_hybrid.py names the regression).
TestLexicalCollection.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
