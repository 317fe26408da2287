"""Commands that measure and improve results: eval, calibrate, dedup, hubness, migrate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from simsearch.cli.common import CollectionArg, JsonOpt, app, batched, errors, out
from simsearch.collection import Collection
from simsearch.errors import InvalidArgumentError
from simsearch.eval import cutoff_metrics, evaluate_rankings, expected_calibration_error, load_beir
from simsearch.plots import reliability_diagram, score_histograms
from simsearch.progress import progress_bar
from simsearch.upgrade.compat import DEFAULT_BLEND


@app.command("eval")
def evaluate(
    collection: CollectionArg,
    beir: Annotated[Path, typer.Option("--beir", help="BEIR dataset folder.")],
    split: Annotated[str, typer.Option(help="Which qrels split to evaluate.")] = "test",
    encoder: Annotated[str | None, typer.Option(help="Encoder for a new collection.")] = None,
    plots: Annotated[
        Path | None,
        typer.Option(help="Folder for PNGs: score histograms, and a reliability diagram."),
    ] = None,
    mode: Annotated[str, typer.Option(help="dense, lexical or hybrid retrieval.")] = "dense",
    fusion: Annotated[str, typer.Option(help="Hybrid fusion: convex or rrf.")] = "convex",
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, recall@10, recall@100 and MRR@10 of a BEIR query set; on a calibrated
    collection also the cutoff sets' precision, recall, F1 and size, and the
    expected calibration error over each query's top-100.

    The collection is built from the BEIR corpus (title and text) when it is
    missing or empty, and reused afterwards.
    """
    with errors():
        data = load_beir(beir, split)
        with Collection.open(collection, encoder=encoder) as col:
            if len(col) == 0:
                ids = list(data.corpus)
                with progress_bar(len(ids), f"Embedding {beir.name} corpus") as advance:
                    for batch in batched(ids, 512):
                        col.add(batch, texts=[data.passage(d) for d in batch], progress=advance)
            qids = list(data.queries)
            texts = [data.queries[q] for q in qids]
            results = col.search(texts, k=100, progress=True, mode=mode, fusion=fusion)
            # Relevance is calibrated on dense scores: other modes report rankings only.
            calibration = col.calibration() if mode == "dense" else None
            cutoffs: dict[str, Any] = {}
            if calibration is not None and calibration["kind"] == "fitted":
                for name, kwargs in (
                    (
                        f"min_relevance={calibration['threshold']:.3f}",
                        {"min_relevance": calibration["threshold"]},
                    ),
                    ("cutoff=f1", {"cutoff": "f1"}),
                ):
                    chosen = col.search(texts, k=100, **kwargs)
                    cutoffs[name] = cutoff_metrics(
                        {q: [h.id for h in row] for q, row in zip(qids, chosen, strict=True)},
                        data.qrels,
                    )
        rankings = {q: [h.id for h in row] for q, row in zip(qids, results, strict=True)}
        metrics: dict[str, Any] = dict(evaluate_rankings(rankings, data.qrels))
        pairs = [
            (h, data.qrels.get(q, {}).get(h.id, 0) > 0)
            for q, row in zip(qids, results, strict=True)
            for h in row
        ]
        if calibration is not None:
            metrics["calibration"] = calibration["kind"]
            metrics["ece@100"] = expected_calibration_error(
                [float(h.relevance or 0.0) for h, _ in pairs], [y for _, y in pairs]
            )
        if cutoffs:
            metrics["cutoffs"] = cutoffs
        if plots is not None:
            plots.mkdir(parents=True, exist_ok=True)
            title = f"{beir.name} {split}, top-100"
            score_histograms(
                [h.score for h, _ in pairs], [y for _, y in pairs], plots / "scores.png", title
            )
            if calibration is not None:
                reliability_diagram(
                    [float(h.relevance or 0.0) for h, _ in pairs],
                    [y for _, y in pairs],
                    plots / "reliability.png",
                    title,
                )
        if as_json:
            print(json.dumps({"dataset": str(beir), "split": split, "mode": mode, **metrics}))
            return
        table = Table(title=f"{beir.name} ({split}, {int(metrics['queries'])} queries)")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in metrics.items():
            if isinstance(value, float) and name != "queries":
                table.add_row(name, f"{value:.4f}")
        out.print(table)
        if cutoffs:
            sets = Table(title="Relevance cutoffs (averaged over queries)")
            for column in ("cutoff", "precision", "recall", "F1", "set size"):
                sets.add_column(column)
            for name, m in cutoffs.items():
                sets.add_row(
                    name, *(f"{m[key]:.4f}" for key in ("precision", "recall", "f1", "set_size"))
                )
            out.print(sets)


@app.command()
def calibrate(
    collection: CollectionArg,
    beir: Annotated[
        Path | None,
        typer.Option("--beir", help="BEIR folder whose judged queries train the calibration."),
    ] = None,
    split: Annotated[str, typer.Option(help="Which qrels split trains it.")] = "train",
    as_json: JsonOpt = False,
) -> None:
    """Fit how scores map to relevance and save it in COLLECTION.

    With --beir, a per-query model learns the probability of relevance from the
    split's judgements; without it, the unlabelled fallback (relevance against
    each query's own score distribution over the collection) is saved.
    """
    with errors():
        with Collection.open(collection, create=False) as col:
            if beir is None:
                summary = col.calibrate()
            else:
                data = load_beir(beir, split)
                qids = list(data.queries)
                summary = col.calibrate(
                    [data.queries[q] for q in qids],
                    [data.qrels[q] for q in qids],
                    progress=True,
                )
        if as_json:
            print(json.dumps(summary))
            return
        if summary["kind"] == "background":
            out.print(
                "Saved the unlabelled calibration (relevance against each query's background)."
            )
        else:
            out.print(fitted_report(summary))


def fitted_report(summary: dict[str, Any]) -> str:
    """A fitted calibration's summary for people: what was fitted, and its
    cross-validated F1 and calibration error beside the global baselines."""
    cv = summary.get("cross_validation", {})
    lines = [
        f"Fitted relevance on {summary['queries']} queries "
        f"({summary['relevant_in_window']} relevant items among their top "
        f"{summary.get('depth', 100)} candidates): the {summary['model']} model, "
        f"cutoff='f1' by {summary.get('cutoff_rule', 'expected F1')}; "
        f"the cutoff that maximised F1 there: min_relevance={summary['threshold']:.3f}"
    ]

    def num(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    if cv:
        f1, ece = cv["f1"], cv["ece"]
        lines.append(
            f"Cross-validated over {summary['folds']} folds of the queries: F1 of cutoff='f1' "
            f"{num(f1['cutoff=f1'])} (one global score threshold: {num(f1['global threshold'])}); "
            f"calibration error of relevance over those candidates {num(ece['fitted'])} "
            f"(one global score map: {num(ece['global map'])})"
        )
    else:
        lines.append("Too few judged queries to cross-validate: the global score map is used.")
    return "\n".join(lines)


@app.command()
def dedup(
    collection: CollectionArg,
    k: Annotated[int, typer.Option(min=1, help="Neighbours in each item's background.")] = 4,
    margin: Annotated[str, typer.Option(help="ratio or distance.")] = "ratio",
    min_margin: Annotated[
        float | None, typer.Option(help="Only pairs with at least this margin.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many pairs.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Mine near-duplicate pairs with margin scoring, best first."""
    with errors(), Collection.open(collection, create=False) as col:
        pairs = col.find_duplicates(k=k, margin=margin, min_margin=min_margin)[:limit]
        if as_json:
            for p in pairs:
                print(json.dumps(dataclasses.asdict(p), ensure_ascii=False))
            return
        table = Table(title=f"Near-duplicates in {collection} ({margin} margin, k={k})")
        for name in ("margin", "similarity", "a", "b"):
            table.add_column(name)
        for p in pairs:
            table.add_row(f"{p.margin:.4f}", f"{p.similarity:.4f}", p.a, p.b)
        out.print(table)


@app.command()
def hubness(
    collection: CollectionArg,
    k: Annotated[int, typer.Option(min=1, help="Length of each top-k list.")] = 10,
    beir: Annotated[
        Path | None,
        typer.Option("--beir", help="Save the queries of this BEIR split as the query bank."),
    ] = None,
    split: Annotated[str, typer.Option(help="Which split's queries form the bank.")] = "train",
    items_bank: Annotated[
        bool,
        typer.Option("--items-bank", help="Save a sample of the collection's items as the bank."),
    ] = False,
    sample: Annotated[int, typer.Option(min=1, help="How many items ask, each once.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Report the skewness of k-occurrence and the top hubs, per hubness method.

    A sample of the collection's own items ask, each left out of its own list;
    the corrected methods are shown once a bank is saved: with --beir the
    split's queries become the bank, with --items-bank a sample of the items.
    """
    with errors(), Collection.open(collection, create=False) as col:
        if beir is not None and items_bank:
            raise InvalidArgumentError("give --beir or --items-bank, not both")
        if beir is not None:
            data = load_beir(beir, split)
            col.set_hubness_bank(list(data.queries.values()))
        if items_bank:
            col.set_hubness_bank()
        report = col.hubness_report(k=k, sample=sample)
        if as_json:
            print(json.dumps(report, ensure_ascii=False))
            return
        table = Table(title=f"{k}-occurrence over {report['queries']} queries in {collection}")
        for name in ("method", "skewness", "top hubs (id: count)"):
            table.add_column(name)
        for method, row in report["methods"].items():
            hubs = ", ".join(f"{i}: {c}" for i, c in row["top_hubs"][:5])
            table.add_row(method, f"{row['skewness']:.3f}", hubs)
        out.print(table)


@app.command()
def migrate(
    collection: CollectionArg,
    to: Annotated[
        str | None, typer.Option("--to", help="The new encoder's registered name.")
    ] = None,
    sample: Annotated[int, typer.Option(min=10, help="Stored texts the map is fitted on.")] = 2000,
    method: Annotated[str, typer.Option(help="auto, procrustes, ridge or lowrank.")] = "auto",
    blend: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of a text query taken from the new encoder's mapped vector until "
            "the backfill ends; the rest comes from the old encoder.",
        ),
    ] = DEFAULT_BLEND,
    backfill: Annotated[
        bool, typer.Option("--backfill", help="Re-embed every stored text, then switch.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Items per backfill transaction.")] = 256,
    as_json: JsonOpt = False,
) -> None:
    """Upgrade COLLECTION to another encoder without taking search offline.

    --to fits a map from the new encoder's space into the stored one, so search
    goes on at once (a text query blends the old encoder's vector with the new
    encoder's mapped one, see --blend); --backfill (now or later, and resumable)
    re-embeds every stored text and makes the new encoder the collection's own.
    """
    with errors():
        if to is None and not backfill:
            raise InvalidArgumentError("give --to ENCODER, --backfill, or both")
        summary: dict[str, Any] = {}
        with Collection.open(collection, create=False) as col:
            if to is not None:
                summary["map"] = col.migrate(
                    to, sample=sample, method=method, blend=blend, progress=True
                )
                if not as_json:
                    m = summary["map"]
                    recall = m["held_out_recall"]
                    shown = "" if recall is None else f", held-out recall@10 {recall:.3f}"
                    out.print(
                        f"Mapped {m['to']} into the collection's space with {m['method']} "
                        f"(fitted on {m['sample']} texts{shown}); searches use it now: a "
                        f"query is {m['blend']:g} the mapped vector, the rest the old encoder's."
                    )
            if backfill:
                summary["backfilled"] = col.backfill(batch=batch_size, progress=True)
                summary["encoder"] = col.info()["encoder"]
                if not as_json:
                    out.print(
                        f"Re-embedded {summary['backfilled']} items; the collection now uses "
                        f"{summary['encoder']['name']}."
                    )
        if as_json:
            print(json.dumps(summary))
