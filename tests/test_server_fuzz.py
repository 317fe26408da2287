"""A bounded schemathesis run against the served OpenAPI document: no request gets a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from server_process import KEYS, Server, key_file, running_server


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fuzz")
    with running_server(root / "data", keys=key_file(root / "keys.json")) as server:
        admin = {"Authorization": f"Bearer {KEYS['admin']}"}
        for name, dim in (("docs", 2), ("0", 3)):
            httpx.post(f"{server.url}/collections", headers=admin, json={"name": name, "dim": dim})
        httpx.post(
            f"{server.url}/collections/docs/add",
            headers=admin,
            json={"ids": ["a", "b"], "vectors": [[1, 0], [0, 1]], "metadata": [{"t": 1}, {}]},
        )
        yield server


def test_no_server_errors(fuzz_server: Server) -> None:
    """Every operation of the OpenAPI document, 40 generated requests each, as the admin
    (so most requests reach the handlers; the auth layer is covered elsewhere)."""
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {KEYS['admin']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=60)

        fuzz()
    metrics = httpx.get(f"{fuzz_server.url}/metrics", headers=headers).text
    sent = sum(
        int(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("simsearch_requests_total")
    )
    assert sent >= 200, metrics
    assert 'status="5' not in metrics
