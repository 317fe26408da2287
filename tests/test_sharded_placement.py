"""Sharded collections without a cluster: placement, the manifest, the merge, a shard's
retried writes, and the error without Ray."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import simsearch
from simsearch.distributed.merge import merge
from simsearch.distributed.placement import MANIFEST, load_or_create_manifest, shard_of, split
from simsearch.distributed.shard import ShardServer


def test_placement_is_a_stable_hash_of_the_id() -> None:
    # Fixed values: a change of rule would move every stored item to another shard.
    assert [shard_of(i, 3) for i in ["a", "b", "item-17", "空"]] == [2, 2, 1, 0]
    parts = split([str(i) for i in range(3000)], 3)
    assert sorted(i for at in parts.values() for i in at) == list(range(3000))
    assert all(900 < len(at) < 1100 for at in parts.values())


def test_manifest_fixes_the_shard_count(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with pytest.raises(simsearch.NotACollectionError, match="shards=N"):
        load_or_create_manifest(root, None)
    assert load_or_create_manifest(root, 3) == 3
    assert (root / MANIFEST).is_file()
    assert load_or_create_manifest(root, None) == 3
    with pytest.raises(simsearch.ConfigMismatchError, match=r"3 shards, not 2.*shards=3"):
        load_or_create_manifest(root, 2)
    with pytest.raises(simsearch.InvalidArgumentError):
        load_or_create_manifest(tmp_path / "other", 0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(simsearch.NotACollectionError, match="other files"):
        load_or_create_manifest(tmp_path / "full", 2)


@pytest.mark.parametrize("count", [0, -2, 5000, 2.5, "3", None, True])
def test_a_damaged_manifest_says_so(tmp_path: Path, count: object) -> None:
    load_or_create_manifest(tmp_path, 3)
    saved = json.loads((tmp_path / MANIFEST).read_text("utf-8"))
    (tmp_path / MANIFEST).write_text(json.dumps({**saved, "shards": count}), "utf-8")
    with pytest.raises(simsearch.CorruptCollectionError, match="damaged or was edited"):
        load_or_create_manifest(tmp_path, None)


def test_two_processes_creating_a_root_at_once_agree_on_the_first_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    real_fsync = os.fsync
    raced: list[bool] = []

    def other_process_first(fd: int) -> None:
        # While this process writes its manifest, another one creates the root with 3.
        if not raced:
            raced.append(True)
            text = json.dumps({"format": 1, "shards": 3, "placement": "blake2b-64-mod"})
            (root / MANIFEST).write_text(text, "utf-8")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", other_process_first)
    with pytest.raises(simsearch.ConfigMismatchError, match="3 shards, not 2"):
        load_or_create_manifest(root, 2)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert raced
    assert load_or_create_manifest(root, None) == 3
    assert sorted(f.name for f in root.iterdir()) == [MANIFEST]  # no file of its own left


def test_merge_keeps_the_best_and_breaks_ties_by_shard_then_rank() -> None:
    def hit(i: str, s: float) -> tuple[str, float, dict[str, int], None, None, None, None]:
        return (i, s, {}, None, None, None, None)

    shard0 = [[hit("a", 0.9), hit("b", 0.5), hit("c", 0.5)]]
    shard1 = [[hit("d", 0.7), hit("e", 0.5)]]
    rows = merge([shard0, shard1], k=4, offset=0)
    assert [(h.id, h.score) for h in rows[0]] == [("a", 0.9), ("d", 0.7), ("b", 0.5), ("c", 0.5)]
    assert [h.id for h in merge([shard0, shard1], k=2, offset=3)[0]] == ["c", "e"]


def test_a_retried_add_is_taken_as_its_own_earlier_commit(tmp_path: Path) -> None:
    load_or_create_manifest(tmp_path, 1)  # the root a shard's folder lives under
    shard = ShardServer(str(tmp_path / "shard-000"), "dot", None, None, None)
    vecs = np.eye(2, dtype=np.float32)
    shard.write("t1", ["a", "b"], vecs, None, [{"n": 1}, None], False)
    # The process died after the commit and Ray retried the call: same token, same items.
    again = ShardServer(str(tmp_path / "shard-000"), None, None, None, None)
    again.write("t1", ["a", "b"], vecs, None, [{"n": 1}, None], False)
    assert again.count(None) == 2
    with pytest.raises(simsearch.DuplicateIdError):  # another call adding a stored id
        again.write("t2", ["a"], vecs[:1], None, None, False)
    with pytest.raises(simsearch.DuplicateIdError):  # a retry whose items differ
        again.write("t1", ["a", "b"], vecs[::-1], None, None, False)
    again.close()
    shard.close()


def test_without_ray_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(simsearch.MissingDependencyError, match=r"simsearch\[ray\]"):
        simsearch.ShardedCollection.open(tmp_path / "r", shards=2)
    assert not (tmp_path / "r").exists()
