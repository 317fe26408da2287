"""Long texts in pieces that fit the model: chunk_text, and ingest --chunk-tokens."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

import simsearch
from simsearch.chunking import chunk_text, token_spans
from simsearch.cli import app
from simsearch.encoders import get_encoder
from simsearch.errors import InvalidArgumentError

runner = CliRunner()
LONG = " ".join(f"word{i} unbelievably-long-hyphenated-term{i}," for i in range(300))


def test_pieces_fit_and_keep_every_word_whole() -> None:
    encoder = get_encoder("minilm-l6-v2-int8")
    pieces = chunk_text(LONG, 100, encoder)
    assert len(pieces) > 5
    assert all(len(token_spans(encoder, p)) <= 100 for p in pieces)
    assert " ".join(pieces).split() == LONG.split()  # in order, no word cut in two
    assert chunk_text("short text", 100, encoder) == ["short text"]
    assert chunk_text("   ", 5, encoder) == []


def test_without_a_tokenizer_a_token_is_a_word() -> None:
    assert chunk_text("a b c d e", 2) == ["a b", "c d", "e"]
    with pytest.raises(InvalidArgumentError, match="at least 1"):
        chunk_text("a", 0)


def test_ingest_chunk_tokens_links_pieces_to_their_record(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text(
        json.dumps({"id": "long", "text": LONG, "lang": "en"}) + "\n"
        + json.dumps({"id": "short", "text": "a short note", "lang": "fr"}) + "\n"
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is cut at the model's limit
        done = runner.invoke(
            app, ["ingest", str(src), "--into", str(tmp_path / "c"), "--chunk-tokens", "120"]
        )
    assert done.exit_code == 0, done.output
    with simsearch.Collection.open(tmp_path / "c", create=False) as col:
        pieces = col.get(where={"source_id": "long"}, include=("metadata", "text"))
        assert [p.id for p in pieces] == [f"long#{i}" for i in range(len(pieces))]
        assert [p.metadata["chunk"] for p in pieces] == list(range(len(pieces)))
        assert {p.metadata["lang"] for p in pieces} == {"en"}
        assert " ".join(p.text or "" for p in pieces).split() == LONG.split()
        (short,) = col.get(["short#0"])
        assert short.metadata == {"lang": "fr", "source_id": "short", "chunk": 0}
        hit = col.search("word250 unbelievably-long-hyphenated-term250", k=1)[0][0]
        assert hit.metadata["source_id"] == "long"


def test_a_record_using_the_link_fields_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "t", "chunk": 3}) + "\n")
    done = runner.invoke(
        app, ["ingest", str(src), "--into", str(tmp_path / "c"), "--chunk-tokens", "10"]
    )
    assert done.exit_code == 1
    assert "metadata field 'chunk' is taken" in done.output
    assert not (tmp_path / "c").exists()
