"""where_text ($contains, $not_contains) in search of every mode, count and get, against a
Python oracle over the stored texts, with where beside it, under writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simsearch
from test_stateful_lexical import letters

# Words the stemmer leaves as they are (see test_stateful_lexical.py).
WORDS = ["cat", "dog", "red", "sun", "box", "tree"]


def oracle(texts: dict[str, str | None], where_text: dict[str, str]) -> set[str]:
    def holds(text: str | None, value: str) -> bool:
        return text is not None and set(value.lower().split()) <= set(text.lower().split())

    out = set()
    for i, t in texts.items():
        if "$contains" in where_text and not holds(t, where_text["$contains"]):
            continue
        if "$not_contains" in where_text and holds(t, where_text["$not_contains"]):
            continue
        out.add(i)
    return out


PHRASE = st.lists(st.sampled_from(WORDS), min_size=1, max_size=2).map(" ".join)
WHERE_TEXT = st.one_of(
    st.builds(lambda w: {"$contains": w}, PHRASE),
    st.builds(lambda w: {"$not_contains": w}, PHRASE),
    st.builds(lambda a, b: {"$contains": a, "$not_contains": b}, PHRASE, PHRASE),
)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    texts=st.lists(
        st.one_of(
            st.none(), st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join)
        ),
        min_size=1,
        max_size=12,
    ),
    where_text=WHERE_TEXT,
    color=st.one_of(st.none(), st.sampled_from(["red", "blue"])),
    deleted=st.integers(0, 3),
)
def test_where_text_matches_the_oracle(
    tmp_path_factory: pytest.TempPathFactory,
    texts: list[str | None],
    where_text: dict[str, str],
    color: str | None,
    deleted: int,
) -> None:
    path = tmp_path_factory.mktemp("t") / "c"
    with simsearch.Collection.open(path, encoder="letters-stateful") as col:
        stored: dict[str, str | None] = {}
        colors = {}
        for n, t in enumerate(texts):
            i = f"i{n}"
            colors[i] = ["red", "blue"][n % 2]
            if t is None:
                col.add(i, vectors=[letters(chr(97 + n) * 2)], metadata={"color": colors[i]})
            else:
                col.add(i, texts=[t], metadata={"color": colors[i]})
            stored[i] = t
        col.count(where_text={"$contains": "cat"})  # the index built; the writes below catch up
        for n in range(min(deleted, len(texts))):
            col.delete(f"i{n}")
            del stored[f"i{n}"]
        if texts[-1] is not None and len(texts) > deleted:
            col.update(f"i{len(texts) - 1}", texts=["sun box"])
            stored[f"i{len(texts) - 1}"] = "sun box"
        where = None if color is None else {"color": color}
        want = {i for i in oracle(stored, where_text) if color is None or colors[i] == color}
        assert col.count(where, where_text=where_text) == len(want)
        assert {it.id for it in col.get(where=where, where_text=where_text)} == want
        some = sorted(stored)[:3]
        if some:
            got = {it.id for it in col.get(some, where=where, where_text=where_text)}
            assert got == want & set(some)
        has_text = any(t is not None for t in stored.values())
        for mode in ("dense", "lexical", "hybrid") if has_text else ("dense",):
            hits = col.search("cat dog red", mode=mode, k=20, where=where, where_text=where_text)
            found = {h.id for h in hits[0]}
            assert found <= want
            if mode != "lexical":
                assert found == want
            else:  # lexical: the allowed texts holding a query word
                words = {"cat", "dog", "red"}
                assert found == {i for i in want if set((stored[i] or "").split()) & words}


def test_where_text_folds_words_like_lexical_search(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", encoder="letters-stateful") as col:
        col.add(["a", "b"], texts=["The Cats sat", "a dog"])
        assert col.count(where_text={"$contains": "cat"}) == 1
        assert col.count(where_text={"$contains": "CATS!"}) == 1
        assert col.count(where_text={"$contains": "zebra"}) == 0
        assert col.count(where_text={"$not_contains": "zebra"}) == 2
        vector = np.ones(26, dtype=np.float32)
        assert [h.id for h in col.search(vector, where_text={"$contains": "dog"})[0]] == ["b"]


@pytest.mark.parametrize(
    ("where_text", "words"),
    [
        ("cat", "must be a dict"),
        ({}, "must be a dict"),
        ({"$has": "cat"}, "not '\\$has'"),
        ({"$contains": 3}, "takes a string"),
        ({"$contains": "the of"}, "no word"),
        ({"$not_contains": ""}, "no word"),
    ],
)
def test_bad_where_text_is_refused(tmp_path: Path, where_text: Any, words: str) -> None:
    with simsearch.Collection.open(tmp_path / "c", encoder="letters-stateful") as col:
        col.add("a", texts=["cat"])
        for call in (
            lambda: col.search("cat", where_text=where_text),
            lambda: col.count(where_text=where_text),
            lambda: col.get(where_text=where_text),
        ):
            with pytest.raises(simsearch.InvalidArgumentError, match=words):
                call()


def test_where_text_through_the_cli_server_and_client(tmp_path: Path) -> None:
    import json

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from simsearch.cli import app
    from simsearch.client import Client
    from simsearch.server.app import create_app
    from simsearch.server.settings import ServerSettings

    with simsearch.Collection.open(tmp_path / "t", metric="dot") as col:
        col.add(["a", "b", "c"], vectors=np.eye(3), texts=["red cat", "red dog", "blue cat"])
    done = CliRunner().invoke(
        app,
        ["search", str(tmp_path / "t"), "red", "--mode", "lexical", "--not-contains", "dog",
         "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert [h["id"] for h in json.loads(done.stdout)] == ["a"]
    with TestClient(create_app(ServerSettings(data_dir=tmp_path / "data"))) as http:
        http.post("/collections", json={"name": "c", "metric": "dot", "dim": 3})
        body = {"ids": ["a", "b", "c"], "vectors": np.eye(3).tolist()}
        http.post("/collections/c/add", json={**body, "texts": ["red cat", "red dog", "cat"]})
        got = http.post(
            "/collections/c/search",
            json={"query": [1, 1, 1], "where_text": {"$contains": "cat"}, "k": 5},
        ).json()
        assert {h["id"] for h in got["results"][0]} == {"a", "c"}
        counted = http.post("/collections/c/count", json={"where_text": {"$contains": "red"}})
        assert counted.json()["count"] == 2
        bad = http.post("/collections/c/count", json={"where_text": {"$has": "red"}})
        assert bad.status_code in (400, 422)
        client = Client("http://testserver")
        client._http = _InProcess(http)  # the client's requests, answered by the app here
        remote = client.collection("c")
        assert remote.count(where_text={"$not_contains": "red"}) == 1
        assert [it.id for it in remote.get(where_text={"$contains": "dog"})] == ["b"]
        hits = remote.search("red", mode="lexical", where_text={"$contains": "cat"})[0]
        assert [h.id for h in hits] == ["a"]


class _InProcess:
    """The client's transport, answered by an app in this process."""

    def __init__(self, http: Any) -> None:
        self.http = http

    def send(self, method: str, path: str, body: Any = None) -> Any:
        from simsearch.http_transport import Reply

        response = self.http.request(method, path, json=body)
        return Reply(response.status_code, response.content)
