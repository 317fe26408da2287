"""The simsearch command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import shared_dataset
from simsearch.cli import app

runner = CliRunner()

RECORDS = [
    {"id": "g", "text": "A man plays the guitar on stage", "topic": "music", "year": 2001},
    {"id": "s", "text": "Shares fell sharply on Wall Street", "topic": "finance", "year": 2008},
    {"id": "c", "text": "How to bake a chocolate cake", "topic": "food", "year": 2015},
    {"id": "v", "text": "A violinist performs a concerto", "topic": "music", "year": 2020},
]


@pytest.fixture
def built(tmp_path: Path) -> Path:
    src = tmp_path / "data.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in RECORDS), encoding="utf-8")
    col = tmp_path / "col"
    result = runner.invoke(app, ["ingest", str(src), "--into", str(col)])
    assert result.exit_code == 0, result.output
    return col


def test_ingest_then_search_json(built: Path) -> None:
    result = runner.invoke(
        app, ["search", str(built), "live music performance", "-k", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert {h["id"] for h in hits} == {"g", "v"}
    assert hits[0]["metadata"]["topic"] == "music"
    assert "text" not in hits[0]["metadata"]


def test_search_with_filter_and_table_output(built: Path) -> None:
    result = runner.invoke(
        app, ["search", str(built), "music", "--where", '{"year": {"$gte": 2010}}']
    )
    assert result.exit_code == 0, result.output
    assert "v" in result.stdout
    assert "0." in result.stdout


def test_info_delete_export(built: Path, tmp_path: Path) -> None:
    info = json.loads(runner.invoke(app, ["info", str(built), "--json"]).stdout)
    assert info["count"] == 4
    assert info["dim"] == 384
    result = runner.invoke(app, ["delete", str(built), "--where", '{"topic": "food"}'])
    assert result.exit_code == 0
    assert "1 deleted" in result.stdout
    result = runner.invoke(app, ["delete", str(built), "g", "missing"])
    assert "1 deleted" in result.stdout
    out = tmp_path / "export.jsonl"
    assert runner.invoke(app, ["export", str(built), "-o", str(out)]).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    assert [r["id"] for r in rows] == ["s", "v"]
    assert len(rows[0]["vector"]) == 384
    plain = runner.invoke(app, ["export", str(built), "--no-vectors"])
    assert "vector" not in json.loads(plain.stdout.splitlines()[1])


def test_ingest_can_choose_the_index(tmp_path: Path) -> None:
    src = tmp_path / "data.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in RECORDS), encoding="utf-8")
    col = tmp_path / "graph"
    assert (
        runner.invoke(app, ["ingest", str(src), "--into", str(col), "--index", "hnsw"]).exit_code
        == 0
    )
    assert json.loads(runner.invoke(app, ["info", str(col), "--json"]).stdout)["index"] == "hnsw"
    bad = runner.invoke(app, ["ingest", str(src), "--into", str(tmp_path / "x"), "--index", "ivf"])
    assert bad.exit_code == 1
    assert "valid kinds are: flat, hnsw, hnsw-int8, hnsw-binary, ivfpq" in bad.output
    # Another kind on reopen: the index is derived, so it is rebuilt from the store.
    assert (
        runner.invoke(
            app, ["ingest", str(src), "--into", str(col), "--index", "hnsw-int8", "--upsert"]
        ).exit_code
        == 0
    )
    assert (
        json.loads(runner.invoke(app, ["info", str(col), "--json"]).stdout)["index"] == "hnsw-int8"
    )


def test_reingest_duplicate_is_a_clear_error_and_upsert_works(built: Path, tmp_path: Path) -> None:
    src = tmp_path / "data.jsonl"
    result = runner.invoke(app, ["ingest", str(src), "--into", str(built)])
    assert result.exit_code == 1
    assert f"{src}:1: id 'g' is already in {built}" in result.output
    assert "--upsert" in result.output
    assert "Traceback" not in result.output
    assert runner.invoke(app, ["ingest", str(src), "--into", str(built), "--upsert"]).exit_code == 0


def test_csv_text_and_folder_sources(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("key,title,body,lang\n1,Cats,Cats purr,en\n2,Hunde,Hunde bellen,de\n")
    col = tmp_path / "c1"
    args = [
        "ingest",
        str(csv_file),
        "--into",
        str(col),
        "--id-field",
        "key",
        "--text-field",
        "title",
        "--text-field",
        "body",
    ]
    assert runner.invoke(app, args).exit_code == 0
    hit = json.loads(runner.invoke(app, ["search", str(col), "cat", "-k", "1", "--json"]).stdout)[0]
    assert hit == {
        "id": "1",
        "score": hit["score"],
        "metadata": {"lang": "en"},
        "text": "Cats Cats purr",
    }
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# Gardening\nTomatoes need sun.")
    (folder / "sub" / "b.txt").write_text("Rust is a systems programming language.")
    (folder / "skip.bin").write_bytes(b"\x00\x01")
    assert (
        runner.invoke(app, ["ingest", str(folder), "--into", str(tmp_path / "c2")]).exit_code == 0
    )
    hit = json.loads(
        runner.invoke(app, ["search", str(tmp_path / "c2"), "code", "-k", "1", "--json"]).stdout
    )[0]
    assert hit["id"] == "sub/b.txt"
    lines = tmp_path / "lines.txt"
    lines.write_text("first line\n\nsecond line\n")
    assert runner.invoke(app, ["ingest", str(lines), "--into", str(tmp_path / "c3")]).exit_code == 0
    info = json.loads(runner.invoke(app, ["info", str(tmp_path / "c3"), "--json"]).stdout)
    assert info["count"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "{missing}", "q"], "is not a simsearch collection"),
        (["search", "{col}", "q", "--where", "{bad json"], "not valid JSON"),
        (["search", "{col}", "q", "--where", '{"a": {"$near": 1}}'], "unknown operator"),
        (["ingest", "{missing}.jsonl", "--into", "{tmp}/x"], "does not exist"),
        (["ingest", "{bad}", "--into", "{tmp}/x"], "not valid JSON"),
        (["delete", "{col}"], "never empties"),
        (["eval", "{tmp}/e", "--beir", "{tmp}"], "not a BEIR dataset"),
    ],
)
def test_errors_are_one_line_without_traceback(
    built: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "ok"}\n{oops\n')
    values = {
        "missing": str(tmp_path / "missing"),
        "col": str(built),
        "tmp": str(tmp_path),
        "bad": str(bad),
    }
    filled = []
    for arg in args:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        filled.append(arg)
    result = runner.invoke(app, filled)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") <= 1


def test_unknown_option_and_help() -> None:
    assert runner.invoke(app, ["search", "--nope"]).exit_code == 2
    result = subprocess.run(
        [sys.executable, "-m", "simsearch.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("ingest", "search", "info", "delete", "export", "eval"):
        assert command in result.stdout


@pytest.mark.slow
def test_eval_on_a_small_beir_subset(tmp_path: Path) -> None:
    """eval builds the collection from the corpus, then reuses it: metrics as JSON."""
    scifact = shared_dataset("scifact")
    sub = tmp_path / "mini"
    (sub / "qrels").mkdir(parents=True)
    qrels = (scifact / "qrels" / "test.tsv").read_text().splitlines()[1:21]
    judged = {line.split("\t")[1] for line in qrels}
    queries = {line.split("\t")[0] for line in qrels}
    corpus = [json.loads(x) for x in (scifact / "corpus.jsonl").read_text().splitlines()]
    keep = [d for d in corpus if d["_id"] in judged] + corpus[:60]
    (sub / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in keep))
    all_q = [json.loads(x) for x in (scifact / "queries.jsonl").read_text().splitlines()]
    (sub / "queries.jsonl").write_text(
        "\n".join(json.dumps(q) for q in all_q if q["_id"] in queries)
    )
    (sub / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels))
    col = tmp_path / "evalcol"
    first = runner.invoke(app, ["eval", str(col), "--beir", str(sub), "--json"])
    assert first.exit_code == 0, first.output
    metrics = json.loads(first.stdout.strip().splitlines()[-1])
    assert metrics["ndcg@10"] > 0.5
    assert metrics["recall@100"] > 0.8
    assert set(metrics) >= {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
    again = json.loads(
        runner.invoke(app, ["eval", str(col), "--beir", str(sub), "--json"]).stdout.splitlines()[-1]
    )
    assert again == metrics


def test_calibrate_then_search_with_a_relevance_cutoff(built: Path, tmp_path: Path) -> None:
    uncalibrated = runner.invoke(app, ["search", str(built), "music", "--min-relevance", "0.5"])
    assert uncalibrated.exit_code == 1
    assert "not calibrated" in uncalibrated.output
    result = runner.invoke(app, ["calibrate", str(built), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"kind": "background"}
    table = runner.invoke(app, ["search", str(built), "live music", "-k", "4"])
    assert "relevance" in table.output
    # From judgements in BEIR form: each query is relevant to one record.
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": r["id"], "text": r["text"]}) for r in RECORDS)
    )
    queries = {"q1": "guitar concert", "q2": "stock market crash", "q3": "dessert recipe"}
    (beir / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": q, "text": t}) for q, t in queries.items())
    )
    (beir / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\tg\t1\nq2\ts\t1\nq3\tc\t1\n"
    )
    fitted = runner.invoke(app, ["calibrate", str(built), "--beir", str(beir), "--json"])
    assert fitted.exit_code == 0, fitted.output
    summary = json.loads(fitted.stdout)
    assert summary["kind"] == "fitted"
    assert summary["queries"] == 3
    assert set(summary["cross_validation"]) == {"log_loss", "f1", "ece"}
    said = runner.invoke(app, ["calibrate", str(built), "--beir", str(beir)])
    assert said.exit_code == 0, said.output
    text = " ".join(said.output.split())
    assert f"the {summary['model']} model" in text
    assert "Cross-validated over 3 folds" in text
    assert "one global score threshold" in text
    assert "one global score map" in text
    cut = runner.invoke(
        app, ["search", str(built), "guitar", "-k", "4", "--min-relevance", "0.99", "--json"]
    )
    hits = json.loads(cut.stdout)
    assert all(h["relevance"] >= 0.99 for h in hits)
    assert len(hits) < 4


def test_eval_reports_cutoffs_calibration_error_and_pictures(tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": r["id"], "text": r["text"]}) for r in RECORDS)
    )
    queries = {
        "q1": "guitar concert",
        "q2": "stock market crash",
        "q3": "dessert recipe",
        "q4": "orchestra soloist",
    }
    (beir / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": q, "text": t}) for q, t in queries.items())
    )
    header = "query-id\tcorpus-id\tscore\n"
    (beir / "qrels" / "train.tsv").write_text(header + "q1\tg\t1\nq2\ts\t1\nq3\tc\t1\n")
    (beir / "qrels" / "test.tsv").write_text(header + "q4\tv\t1\n")
    col = str(tmp_path / "col")
    plain = runner.invoke(app, ["eval", col, "--beir", str(beir), "--json"])
    assert plain.exit_code == 0, plain.output
    assert "ece@100" not in json.loads(plain.stdout.splitlines()[-1])
    assert runner.invoke(app, ["calibrate", col, "--beir", str(beir)]).exit_code == 0
    pictures = tmp_path / "plots"
    result = runner.invoke(
        app, ["eval", col, "--beir", str(beir), "--plots", str(pictures), "--json"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.splitlines()[-1])
    assert metrics["calibration"] == "fitted"
    assert 0.0 <= metrics["ece@100"] <= 1.0
    assert set(metrics["cutoffs"]["cutoff=f1"]) == {"precision", "recall", "f1", "set_size"}
    assert (pictures / "reliability.png").stat().st_size > 1000
    assert (pictures / "scores.png").stat().st_size > 1000
    table = runner.invoke(app, ["eval", col, "--beir", str(beir)])
    assert "Relevance cutoffs" in table.output
