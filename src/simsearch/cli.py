"""The ``simsearch`` command line: ingest, search, info, delete, export, eval.

Errors print one line on stderr and exit with status 1; no traceback.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from simsearch.check import check_collection
from simsearch.collection import Collection
from simsearch.config import index_from_name
from simsearch.errors import InvalidArgumentError, SimsearchError
from simsearch.eval import cutoff_metrics, evaluate_rankings, expected_calibration_error, load_beir
from simsearch.ingest import ingest as run_ingest
from simsearch.plots import reliability_diagram, score_histograms
from simsearch.progress import progress_bar
from simsearch.upgrade.compat import DEFAULT_BLEND

app = typer.Typer(
    name="simsearch",
    help="Embedding similarity search: build durable collections and search them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

T = TypeVar("T")

CollectionArg = Annotated[Path, typer.Argument(help="Folder of the collection.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except SimsearchError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        err.print(
            f"[bold red]error:[/] {exc.strerror or exc}: {exc.filename or ''}", highlight=False
        )
        raise typer.Exit(1) from None


def _parse_where(where: str | None) -> Any:
    if where is None:
        return None
    try:
        return json.loads(where)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"--where is not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise InvalidArgumentError("--where is nested too deeply") from None


def _batched(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@app.command()
def ingest(
    source: Annotated[Path, typer.Argument(help="JSONL, CSV/TSV, .txt/.md, or a folder.")],
    into: Annotated[Path, typer.Option("--into", help="Collection folder (created if missing).")],
    id_field: Annotated[str, typer.Option(help="Field holding each record's id.")] = "id",
    text_field: Annotated[
        list[str], typer.Option(help="Field(s) to embed; repeat to join several.")
    ] = ["text"],  # noqa: B006 - typer reads list defaults
    encoder: Annotated[
        str | None, typer.Option(help="Encoder name (default: saved/MiniLM).")
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="cosine, dot or l2 for a new collection.")
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            help="Index kind: flat (exact), hnsw (graph), hnsw-int8 or hnsw-binary (graph over "
            "compressed codes, rescored) or ivfpq (compressed inverted file, rescored)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Items per transaction.")] = 256,
    upsert: Annotated[bool, typer.Option(help="Replace items whose id already exists.")] = False,
) -> None:
    """Embed the texts of SOURCE and store them, with every other field as metadata.

    Every record is checked first; a bad one is named by file and line, and nothing is written.
    """
    with _errors():
        kind = index_from_name(index) if index is not None else None
        stored, held = run_ingest(
            source,
            into,
            id_field=id_field,
            text_fields=text_field,
            encoder=encoder,
            metric=metric,
            index=kind,
            batch_size=batch_size,
            upsert=upsert,
            note=lambda line: err.print(
                f"note: {line}", markup=False, highlight=False, soft_wrap=True
            ),
        )
        err.print(f"{stored} items stored; the collection holds {held}.")


@app.command()
def search(
    collection: CollectionArg,
    query: Annotated[str, typer.Argument(help="Text to search for.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many hits.")] = 10,
    where: Annotated[
        str | None, typer.Option(help='Metadata filter as JSON, e.g. \'{"lang": "en"}\'.')
    ] = None,
    min_relevance: Annotated[
        float | None,
        typer.Option(help="Keep hits with at least this calibrated relevance (0-1)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the K items most similar to QUERY."""
    with _errors(), Collection.open(collection, create=False) as col:
        hits = col.search(query, k=k, where=_parse_where(where), min_relevance=min_relevance)[0]
        if as_json:
            print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
            return
        table = Table(title=f"{query!r} in {collection}", title_justify="left")
        calibrated = bool(hits) and hits[0].relevance is not None
        columns = ("#", "score", "relevance", "id", "text", "metadata")
        for name in columns if calibrated else tuple(c for c in columns if c != "relevance"):
            table.add_column(name, overflow="fold" if name == "text" else "ellipsis")
        for rank, h in enumerate(hits, 1):
            text = (h.text or "")[:160] + ("…" if h.text and len(h.text) > 160 else "")
            meta = json.dumps(h.metadata, ensure_ascii=False)[:60]
            relevance = [f"{h.relevance:.3f}"] if calibrated else []
            table.add_row(str(rank), f"{h.score:.4f}", *relevance, h.id, text, meta)
        out.print(table)


@app.command()
def info(collection: CollectionArg, as_json: JsonOpt = False) -> None:
    """Describe a collection: size, metric, dimension, encoder."""
    with _errors(), Collection.open(collection, create=False) as col:
        data = col.info()
        if as_json:
            print(json.dumps(data))
            return
        table = Table(show_header=False)
        for key, value in data.items():
            shown = f"{value['name']} ({value['version']})" if key == "encoder" and value else value
            table.add_row(key, str(shown))
        out.print(table)


@app.command()
def check(
    collection: CollectionArg,
    repair: Annotated[
        bool,
        typer.Option(help="Mend derived data: the sequence counter, the saved index."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check COLLECTION's data: SQLite's integrity check, then simsearch's own (config,
    vectors, metadata, sequence counter, saved index). Exits 1 while problems remain."""
    with _errors():
        report = check_collection(collection, repair=repair)
    if as_json:
        print(json.dumps(dataclasses.asdict(report) | {"ok": report.ok}, ensure_ascii=False))
    else:
        for line in report.repaired:
            out.print(f"repaired: {line}", highlight=False)
        for line in report.problems:
            out.print(f"[bold red]problem:[/] {line}", highlight=False, markup=True)
        if report.ok:
            out.print(f"{collection}: {report.items} items, no problems found", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def delete(
    collection: CollectionArg,
    ids: Annotated[list[str] | None, typer.Argument(help="Ids to delete.")] = None,
    where: Annotated[
        str | None, typer.Option(help="Delete the items matching this filter.")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Delete every item (the collection stays).")
    ] = False,
) -> None:
    """Delete items by id and/or filter, or --all; prints how many were deleted."""
    with _errors(), Collection.open(collection, create=False) as col:
        try:
            n = col.delete(ids or None, where=_parse_where(where), all=everything)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(str(exc).replace("all=True", "--all")) from None
        out.print(f"{n} deleted")


@app.command()
def export(
    collection: CollectionArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
    vectors: Annotated[bool, typer.Option(help="Include the vectors.")] = True,
) -> None:
    """Write every item as JSONL: id, text, metadata and (by default) vector."""
    with _errors(), Collection.open(collection, create=False) as col:
        sink = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            for item in col.iter_items():
                row: dict[str, Any] = {"id": item.id, "text": item.text, "metadata": item.metadata}
                if vectors:
                    row["vector"] = [float(x) for x in item.vector]
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
        finally:
            if output:
                sink.close()


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
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, recall@10, recall@100 and MRR@10 of a BEIR query set; on a calibrated
    collection also the cutoff sets' precision, recall, F1 and size, and the
    expected calibration error over each query's top-100.

    The collection is built from the BEIR corpus (title and text) when it is
    missing or empty, and reused afterwards.
    """
    with _errors():
        data = load_beir(beir, split)
        with Collection.open(collection, encoder=encoder) as col:
            if len(col) == 0:
                ids = list(data.corpus)
                with progress_bar(len(ids), f"Embedding {beir.name} corpus") as advance:
                    for batch in _batched(ids, 512):
                        col.add(batch, texts=[data.passage(d) for d in batch], progress=advance)
            qids = list(data.queries)
            texts = [data.queries[q] for q in qids]
            results = col.search(texts, k=100, progress=True)
            calibration = col.calibration()
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
            print(json.dumps({"dataset": str(beir), "split": split, **metrics}))
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
    with _errors():
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
            out.print(
                f"Fitted relevance on {summary['queries']} queries "
                f"({summary['relevant_in_window']} relevant items among their candidates); "
                f"the cutoff that maximised F1 there: min_relevance={summary['threshold']:.3f}"
            )


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
    with _errors(), Collection.open(collection, create=False) as col:
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
    with _errors(), Collection.open(collection, create=False) as col:
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
    with _errors():
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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    data_dir: Annotated[Path, typer.Argument(help="Folder holding the collections.")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind.")] = 8000,
    api_keys: Annotated[
        Path | None,
        typer.Option(envvar="SIMSEARCH_API_KEYS_FILE", help="JSON file of API keys and scopes."),
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Allow serving a non-loopback address without API keys.")
    ] = False,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body.")] = 32.0,
    max_queries: Annotated[int, typer.Option(min=1, help="Most queries per search.")] = 1_000,
    max_results: Annotated[
        int, typer.Option(min=1, help="Most hits per search (queries x k).")
    ] = 100_000,
    max_texts: Annotated[int, typer.Option(min=1, help="Most texts to embed per request.")] = 1_000,
    max_text_chars: Annotated[
        int, typer.Option(min=1, help="Most characters to embed per request.")
    ] = 1_000_000,
    max_response_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest answer to a search or get.")
    ] = 64.0,
) -> None:
    """Serve the collections in DATA_DIR over HTTP, with a search page at /."""
    with _errors():
        from simsearch.encoders.base import require

        require("fastapi", "server")
        uvicorn: Any = require("uvicorn", "server")
        from simsearch.server.app import create_app
        from simsearch.server.auth import KeyRing
        from simsearch.server.settings import ServerSettings

        keys = KeyRing.from_file(api_keys) if api_keys else None
        if keys is None and not _is_loopback(host) and not insecure:
            raise InvalidArgumentError(
                f"refusing to serve {host} without API keys: pass --api-keys FILE, "
                "or --insecure to serve it open"
            )
        settings = ServerSettings(
            data_dir=data_dir,
            keys=keys,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            max_queries=max_queries,
            max_results=max_results,
            max_texts=max_texts,
            max_text_chars=max_text_chars,
            max_response_bytes=int(max_response_mb * 1024 * 1024),
        )
        err.print(
            f"Serving {data_dir} on http://{host}:{port} "
            f"({'API keys required' if keys else 'no API keys'})",
            highlight=False,
        )
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``simsearch`` command."""
    command: Callable[..., Any] = app
    command(args=argv, prog_name="simsearch")


if __name__ == "__main__":
    main()
