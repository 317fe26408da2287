"""Model upgrades: a fitted map at once, then a crash-safe backfill to the new encoder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import simsearch
from simsearch.encoders import get_encoder
from simsearch.upgrade.compat import DEFAULT_BLEND

pytest.importorskip("static_model", reason="the static-64 encoder needs simsearch[static]")

OLD, NEW = "minilm-l6-v2-int8", "static-64"
TOPICS = ["cats", "dogs", "stock markets", "jazz music", "rainy weather", "fast cars"]
TEXTS = [f"note {i}: something about {TOPICS[i % len(TOPICS)]}" for i in range(600)]
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collection of TEXTS embedded by the old encoder, migration started (copied per test)."""
    path = tmp_path_factory.mktemp("template") / "c"
    with simsearch.Collection.open(path, encoder=OLD) as col:
        col.add(
            [f"t{i}" for i in range(len(TEXTS))],
            texts=TEXTS,
            metadata=[{"i": i} for i in range(len(TEXTS))],
        )
        summary = col.migrate(NEW, sample=300)
        assert summary["method"] in {"procrustes", "ridge", "lowrank"}
    return path


def copy_of(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "c")
    return tmp_path / "c"


def test_search_works_at_once_and_the_backfill_makes_the_new_encoder_the_collections(
    template: Path, tmp_path: Path
) -> None:
    path = copy_of(template, tmp_path)
    with simsearch.Collection.open(path) as col:
        assert col.config.encoder is not None
        assert col.config.encoder.name == OLD  # still the old space until the backfill ends
        hits = col.search("dogs", k=20)[0]
        assert sum("dogs" in (h.text or "") for h in hits) >= 10
        col.add(["late"], texts=["a late note about dogs"])
        with pytest.raises(simsearch.InvalidArgumentError, match="give texts too"):
            col.add(["vec"], vectors=np.ones((1, 384)))
        # The sample was embedded by migrate() and the late item when it was written.
        assert col.backfill(batch=50) == len(TEXTS) - 300
        info = col.info()
        assert info["encoder"]["name"] == NEW
        assert info["dim"] == 64
        new = get_encoder(NEW)
        items = col.get(["t0", "t7", "late"])
        want = new.encode([TEXTS[0], TEXTS[7], "a late note about dogs"])
        np.testing.assert_allclose(np.stack([i.vector for i in items]), want, atol=1e-6)
        top = col.search("dogs", k=5)[0]
        assert all("dogs" in (h.text or "") for h in top)
    with simsearch.Collection.open(path) as col:  # and it stays so
        assert col.config.dim == 64
        with pytest.raises(simsearch.InvalidArgumentError, match="no model upgrade"):
            col.backfill()


def test_bad_migrations_are_refused(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "v") as col:
        col.add(["a"], vectors=[[1.0, 0.0]])
        with pytest.raises(simsearch.InvalidArgumentError, match="embedded from texts"):
            col.migrate(NEW)
    with simsearch.Collection.open(tmp_path / "t", encoder=NEW) as col:
        col.add([f"x{i}" for i in range(20)], texts=TEXTS[:20])
        with pytest.raises(simsearch.InvalidArgumentError, match="already uses"):
            col.migrate(NEW)
        with pytest.raises(simsearch.InvalidArgumentError, match="sample must be"):
            col.migrate(OLD, sample=3)
        with pytest.raises(simsearch.InvalidArgumentError, match="method must be"):
            col.migrate(OLD, method="cca")
        with pytest.raises(simsearch.InvalidArgumentError, match="unknown encoder"):
            col.migrate("no-such-model")
        assert col.config.encoder is not None
        assert col.config.encoder.name == NEW


def test_migrating_again_to_the_same_encoder_reuses_what_was_embedded(
    template: Path, tmp_path: Path
) -> None:
    path = copy_of(template, tmp_path)
    with simsearch.Collection.open(path) as col:
        again = col.migrate(NEW, sample=400, method="ridge")
        assert again["method"] == "ridge"
        assert again["embedded"] == 100  # 300 of the 400 were embedded by the first migrate
        assert col.backfill(batch=64) == len(TEXTS) - 400
        new = get_encoder(NEW)
        got = {i.id: i.vector for i in col.iter_items()}
    want = new.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(got[f"t{i}"], want[i], atol=1e-6, err_msg=text)


def scores_by_id(col: simsearch.Collection, query: str) -> dict[str, float]:
    """Exact scores of every item for a text query."""
    return {h.id: h.score for h in col.search(query, k=len(col), exact=True)[0]}


def test_a_query_blends_the_old_encoders_vector_with_the_mapped_one(
    template: Path, tmp_path: Path
) -> None:
    path = copy_of(template, tmp_path)
    query = "a note about jazz music"
    old = get_encoder(OLD)
    with simsearch.Collection.open(path) as col:
        stored = {i.id: i.vector for i in col.iter_items()}
        # blend 0: exactly the old encoder's query against the stored vectors
        assert col.migrate(NEW, sample=300, blend=0.0)["embedded"] == 0
        alone = scores_by_id(col, query)
        q = old.encode([query], kind="query")[0]
        for key, score in alone.items():
            v = stored[key]
            want = float(q @ v / np.linalg.norm(q) / np.linalg.norm(v))
            assert score == pytest.approx(want, abs=1e-5)
        col.migrate(NEW, sample=300, blend=1.0)
        mapped = scores_by_id(col, query)
        assert col.info()["migration"]["blend"] == 1.0
        col.migrate(NEW, sample=300)  # the default
        assert col.info()["migration"]["blend"] == DEFAULT_BLEND
        blended = scores_by_id(col, query)
    # Scores are cosines, so a blend of unit query vectors scores every item at the
    # same blend of the two scores, up to one factor (the blend's length).
    keys = sorted(alone)
    mix = np.array([(1 - DEFAULT_BLEND) * alone[k] + DEFAULT_BLEND * mapped[k] for k in keys])
    got = np.array([blended[k] for k in keys])
    factor = got @ mix / (mix @ mix)
    assert factor > 1.0  # two different unit vectors blend to a shorter one
    np.testing.assert_allclose(got, factor * mix, atol=1e-5)


def test_a_text_written_during_the_upgrade_gets_the_old_encoders_exact_vector(
    template: Path, tmp_path: Path
) -> None:
    path = copy_of(template, tmp_path)
    text = "a late note about rainy weather"
    with simsearch.Collection.open(path) as col:
        col.add(["late"], texts=[text])
        np.testing.assert_allclose(
            col.get("late")[0].vector, get_encoder(OLD).encode([text])[0], atol=1e-6
        )
        col.backfill(batch=100)
        np.testing.assert_allclose(
            col.get("late")[0].vector, get_encoder(NEW).encode([text])[0], atol=1e-6
        )


def test_without_the_old_encoder_the_map_stands_in_for_it(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = copy_of(template, tmp_path)
    query = "dogs"
    with simsearch.Collection.open(path) as col:
        col.migrate(NEW, sample=300, blend=1.0)
        mapped = scores_by_id(col, query)
        col.migrate(NEW, sample=300)
    import simsearch.embedding as module

    def missing(name: str) -> object:
        if name == OLD:
            raise simsearch.MissingDependencyError(f"{name} cannot be loaded here")
        return get_encoder(name)

    monkeypatch.setattr(module, "get_encoder", missing)
    with simsearch.Collection.open(path) as col:
        assert scores_by_id(col, query) == pytest.approx(mapped, abs=1e-6)
        col.add(["late"], texts=["a late note about dogs"])
        assert col.get("late")[0].vector.shape == (384,)  # mapped into the old space


@pytest.mark.parametrize("blend", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_a_bad_blend_is_refused_and_starts_nothing(
    template: Path, tmp_path: Path, blend: object
) -> None:
    path = tmp_path / "c"
    with simsearch.Collection.open(path, encoder=OLD) as col:
        col.add([f"t{i}" for i in range(20)], texts=TEXTS[:20])
        with pytest.raises(simsearch.InvalidArgumentError, match="blend must be"):
            col.migrate(NEW, sample=10, blend=blend)  # type: ignore[arg-type]
        assert col.info()["migration"] is None


def uninterrupted(template: Path, tmp_path: Path) -> dict[str, np.ndarray]:
    path = shutil.copytree(template, tmp_path / "reference")
    with simsearch.Collection.open(path) as col:
        col.backfill(batch=16)
        return {i.id: i.vector for i in col.iter_items()}


def test_sigkill_during_backfill_resumes_to_the_same_result(template: Path, tmp_path: Path) -> None:
    want = uninterrupted(template, tmp_path)
    path = copy_of(template, tmp_path)
    rng = np.random.default_rng(11)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    kills = 0
    for _ in range(10):
        child = subprocess.Popen(
            [sys.executable, str(HERE / "backfill_worker.py"), str(path), "16"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        time.sleep(float(rng.uniform(0.0, 0.3)))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        kills += "finished" not in out
        with simsearch.Collection.open(path) as col:
            # Whatever the moment of the kill, the collection is wholly in one space.
            assert col.config.dim in (384, 64)
            assert len(col) == len(TEXTS)
            col.search("dogs", k=3)
        if "finished" in out:
            break
    assert kills >= 1, "no kill landed during the backfill"
    with simsearch.Collection.open(path) as col:
        col.backfill(batch=16)
        got = {i.id: i.vector for i in col.iter_items()}
    assert got.keys() == want.keys()
    for key, vector in want.items():
        np.testing.assert_array_equal(got[key], vector)


def test_searching_during_backfill_never_errors_nor_repeats(template: Path, tmp_path: Path) -> None:
    path = copy_of(template, tmp_path)
    errors: list[BaseException] = []
    done = threading.Event()

    def searcher() -> None:
        with simsearch.Collection.open(path) as col:
            while not done.is_set():
                try:
                    for row in col.search(["dogs", "jazz music"], k=10):
                        ids = [h.id for h in row]
                        assert len(ids) == len(set(ids)) == 10
                except BaseException as exc:
                    errors.append(exc)
                    return

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        with simsearch.Collection.open(path) as col:
            col.backfill(batch=8)
    finally:
        done.set()
        thread.join()
    assert not errors, errors


def test_cli_migrates_then_backfills(template: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from simsearch.cli import app

    runner = CliRunner()
    path = str(tmp_path / "c")
    with simsearch.Collection.open(path, encoder=OLD) as col:
        col.add([f"t{i}" for i in range(60)], texts=TEXTS[:60])
    assert runner.invoke(app, ["migrate", path]).exit_code == 1
    args = ["migrate", path, "--to", NEW, "--sample", "50", "--blend", "0.5", "--json"]
    mapped = runner.invoke(app, args)
    assert mapped.exit_code == 0, mapped.output
    assert json.loads(mapped.stdout)["map"]["sample"] == 50
    assert json.loads(mapped.stdout)["map"]["blend"] == 0.5
    assert runner.invoke(app, [*args[:-2], "1.5"]).exit_code != 0
    done = runner.invoke(app, ["migrate", path, "--backfill", "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["backfilled"] == 10  # the other 50 were embedded for the map
    assert summary["encoder"]["name"] == NEW
