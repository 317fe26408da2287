"""Payload indexes from the CLI, the server (admin route, read route) and the client, and
count/get answered from them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

import simsearch
from simsearch.cli import app

runner = CliRunner()


def _filled(path: Path, n: int = 60) -> simsearch.Collection:
    col = simsearch.Collection.open(path, metric="dot")
    col.add(
        [f"i{k}" for k in range(n)],
        vectors=np.random.default_rng(0).standard_normal((n, 4)),
        metadata=[{"label": k % 10, "lang": ["en", "de"][k % 2]} for k in range(n)],
    )
    return col


def test_count_and_get_use_the_index_and_agree_with_the_scan(tmp_path: Path) -> None:
    with _filled(tmp_path / "c") as col:
        where = {"label": {"$lt": 3}, "lang": "en"}
        scanned = col.count(where)
        ids = [i.id for i in col.get(where=where, include=["metadata"])]
        col.index_field("label", "integer")
        col.index_field("lang", "keyword")
        assert col.explain(where=where)["filter"]["from"] == "payload index"
        assert col.count(where) == scanned == 12
        assert [i.id for i in col.get(where=where, include=["metadata"])] == ids
        assert [i.id for i in col.get(where=where, limit=4, offset=2)] == ids[2:6]
        assert [i.id for i in col.get(["i0", "i1", "i2"], where=where)] == ["i0", "i2"]


def test_cli_index_field_info_explain_and_drop(tmp_path: Path) -> None:
    path = tmp_path / "c"
    _filled(path).close()
    done = runner.invoke(app, ["index-field", str(path), "label", "--kind", "integer"])
    assert done.exit_code == 0, done.output
    assert "label indexed (integer" in done.output
    again = runner.invoke(app, ["index-field", str(path), "label", "--kind", "integer"])
    assert "already indexed" in again.output
    bad = runner.invoke(app, ["index-field", str(path), "lang", "--kind", "integer"])
    assert bad.exit_code == 1
    assert "choose the kind that fits" in bad.output
    info = json.loads(runner.invoke(app, ["info", str(path), "--json"]).output)
    assert info["field_indexes"][0]["field"] == "label"
    assert {f["field"]: f["indexed"] for f in info["fields"]} == {"label": "integer", "lang": None}
    shown = runner.invoke(app, ["explain", str(path), "--where", '{"label": 3}'])
    assert shown.exit_code == 0, shown.output
    assert "filter allows 6 items" in shown.output
    assert "payload index" in shown.output
    plan = json.loads(
        runner.invoke(app, ["explain", str(path), "--where", '{"lang": "en"}', "--json"]).output
    )
    assert plan["filter"]["from"] == "scan"
    typo = runner.invoke(app, ["explain", str(path), "--where", '{"lable": 3}'])
    assert typo.exit_code == 1
    assert "did you mean 'label'" in typo.output
    dropped = runner.invoke(app, ["drop-field-index", str(path), "label"])
    assert "index dropped" in dropped.output
    missing = runner.invoke(app, ["index-field", str(tmp_path / "nothing"), "a", "--kind", "bool"])
    assert missing.exit_code == 1
    assert not (tmp_path / "nothing").exists()


def test_server_admin_route_client_and_explain(keyed_server: Any) -> None:
    from server_process import KEYS

    name = uuid.uuid4().hex
    with simsearch.Client(keyed_server.url, api_key=KEYS["admin"]) as client:
        col = client.create_collection(name, metric="dot", dim=2)
        col.add(
            ["a", "b", "c"],
            vectors=[[1, 0], [0, 1], [1, 1]],
            metadata=[{"n": 1}, {"n": 2}, {"n": 3}],
        )
        assert col.index_field("n", "integer") is True
        assert col.index_field("n", "integer") is False
        assert col.info()["field_indexes"][0]["kind"] == "integer"
        plan = col.explain(where={"n": {"$gte": 2}})
        assert plan["filter"]["allowed"] == 2
        assert plan["filter"]["from"] == "payload index"
        assert col.count({"n": {"$gte": 2}}) == 2
        with pytest.raises(simsearch.InvalidFilterError, match="did you mean 'n'"):
            col.explain(where={"$and": [{"nn": 1}]})
        with pytest.raises(simsearch.InvalidArgumentError):
            col.index_field("n", "float")
        assert col.drop_field_index("n") is True
    # A write key may not change the config.
    writer = {"Authorization": f"Bearer {KEYS['writer']}"}
    docs = f"{keyed_server.url}/collections/docs/fields"
    denied = httpx.post(docs, json={"field": "n", "kind": "integer"}, headers=writer)
    assert denied.status_code == 403
    admin = {"Authorization": f"Bearer {KEYS['admin']}"}
    url = f"{keyed_server.url}/collections/{name}/fields"
    wrong = httpx.post(url, json={"field": "n", "kind": "number"}, headers=admin)
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_input"
