"""A Ray cluster of several nodes inside this machine for the sharded tests, bound to
127.0.0.1 (tests may only talk over loopback) and without the dashboard."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

#: A small object store per node: the tests move a few megabytes.
OBJECT_STORE = 80 * 1024 * 1024
#: Nodes report every second and are declared dead after 5 missed reports, so an actor on a
#: removed node is restarted elsewhere within seconds (the default takes half a minute).
SYSTEM_CONFIG = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5}


@contextmanager
def local_cluster(nodes: int = 3) -> Iterator[Any]:
    """A started ``ray.cluster_utils.Cluster`` of ``nodes`` nodes (1 CPU each) with this
    process connected to it; shut down afterwards."""
    pytest.importorskip("ray", reason="the sharded tests need the ray extra")
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    # ray.init turns a loopback address into the machine's network address unless Ray
    # is told it runs on one machine; the nodes themselves are bound to 127.0.0.1.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    local = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "object_store_memory": OBJECT_STORE}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**local, "include_dashboard": False, "_system_config": SYSTEM_CONFIG},
    )
    try:
        for _ in range(nodes - 1):
            cluster.add_node(**local)
        ray.init(address=cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
