"""Multi-vector collections through the command line, the HTTP server and its client."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import simsearch
from server_process import running_server
from simsearch.cli import app

runner = CliRunner()
TEXTS = {
    "moon": "Apollo 11 landed the first humans on the Moon in 1969.",
    "guitar": "A man plays an acoustic guitar on a small stage.",
    "cake": "Bake the chocolate cake for forty minutes.",
}


def test_cli_ingests_texts_into_a_multivector_collection(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in TEXTS.items()))
    col = tmp_path / "c"
    args = ["ingest", str(src), "--into", str(col), "--encoder", "minilm-l6-v2-tokens"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["search", str(col), "astronauts on the moon", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["id"] == "moon"
    info = json.loads(runner.invoke(app, ["info", str(col), "--json"]).stdout)
    assert info["multivector"]["dim"] == 384
    assert info["dim"] == 384


def test_server_and_client_take_sets_of_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    sets = [rng.standard_normal((int(rng.integers(1, 6)), 4)) for _ in range(30)]
    ids = [f"d{i}" for i in range(30)]
    with running_server(tmp_path / "data") as server, simsearch.Client(server.url) as client:
        remote = client.create_collection("mv", dim=4, multivector=True)
        remote.add(ids[:20], multivectors=sets[:20], metadata=[{"n": i} for i in range(20)])
        remote.upsert(ids[20:], multivectors=[s.tolist() for s in sets[20:]])
        assert remote.info()["multivector"]["dim"] == 4
        one = remote.search(sets[7], k=3, candidates=30)[0]
        assert one[0].id == "d7"
        batch = remote.search([sets[3], sets[25]], k=1)
        assert [row[0].id for row in batch] == ["d3", "d25"]
        filtered = remote.search(sets[7], k=5, where={"n": {"$gte": 10}})[0]
        assert all(h.id not in ("d7",) and int(h.id[1:]) >= 10 for h in filtered)
    with simsearch.Collection.open(tmp_path / "data" / "mv") as local:
        assert [h.id for h in local.search(sets[7], k=3)[0]] == [h.id for h in one]
