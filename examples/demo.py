"""simsearch demo: build a collection of Wikipedia passages and search it.

The passages come from the English Wikipedia excerpt that ships in gensim's
test data (a real dump of about 200 articles). The first run embeds them with
the default text encoder; later runs reuse the stored collection.

Run with ``make demo`` (or ``python examples/demo.py [FOLDER]``).
"""

from __future__ import annotations

import bz2
import os
import re
import sys
import time
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

import simsearch
from simsearch.progress import progress_bar

PASSAGES_PER_ARTICLE = 16
MAX_PASSAGES = 1200
MIN_WORDS = 40
DUMP = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

console = Console()


def _clean(paragraph: str) -> str:
    """Drop the bold/italic quotes and section headings that filter_wiki leaves."""
    paragraph = re.sub(r"={2,}[^=]+={2,}", " ", paragraph)
    paragraph = re.sub(r"'{2,}", "", paragraph)
    return " ".join(paragraph.split())


def wikipedia_passages() -> list[tuple[str, str, dict[str, object]]]:
    """(id, text, metadata) for the paragraphs of the gensim Wikipedia excerpt."""
    import gensim
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    dump = Path(os.path.dirname(gensim.__file__)) / DUMP
    passages: list[tuple[str, str, dict[str, object]]] = []
    with bz2.open(dump) as fh:
        for title, markup, _page_id in extract_pages(fh):
            paragraphs = [_clean(p) for p in filter_wiki(markup).split("\n\n")]
            kept = [p for p in paragraphs if len(p.split()) >= MIN_WORDS]
            for i, text in enumerate(kept[:PASSAGES_PER_ARTICLE]):
                meta = {"title": title, "paragraph": i, "words": len(text.split())}
                passages.append((f"{title}#{i}", text, meta))
    return passages[:MAX_PASSAGES]


def build(path: Path) -> simsearch.Collection:
    col = simsearch.Collection.open(path)
    if len(col) > 0:
        console.print(f"Reusing [bold]{path}[/]: {len(col)} passages already embedded.")
        return col
    passages = wikipedia_passages()
    console.print(f"Embedding {len(passages)} Wikipedia passages into [bold]{path}[/] …")
    start = time.perf_counter()
    # Each batch says how many of its texts the model cut; say it once for all of them.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", simsearch.TextTruncatedWarning)
        with progress_bar(len(passages), "Embedding passages") as advance:
            for i in range(0, len(passages), 128):
                batch = passages[i : i + 128]
                col.add(
                    [p[0] for p in batch],
                    texts=[p[1] for p in batch],
                    metadata=[p[2] for p in batch],
                    progress=advance,
                )
    cut = 0
    for w in caught:
        if isinstance(w.message, simsearch.TextTruncatedWarning):
            cut += w.message.cut
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    console.print(f"Stored {len(col)} passages in {time.perf_counter() - start:.1f} s.")
    if cut:
        console.print(
            f"{cut} passages are longer than the model's token limit: only their start is "
            "embedded (split long texts into pieces with `simsearch ingest --chunk-tokens`)."
        )
    return col


def show(col: simsearch.Collection, query: str, where: dict[str, object] | None = None) -> None:
    hits = col.search(query, k=5, where=where)[0]
    title = f"[bold]{query}[/]" + (f"  where {where}" if where else "")
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score")
    table.add_column("article")
    table.add_column("passage")
    room = max(30, console.width - 44)
    for rank, hit in enumerate(hits, 1):
        text = hit.text or ""
        text = text if len(text) <= room else text[: room - 1] + "…"
        article = str(hit.metadata["title"])[:20]
        table.add_row(str(rank), f"{hit.score:.3f}", article, text)
    console.print(table)


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else ".data/demo-wikipedia")
    with build(path) as col:
        info = col.info()
        console.print(
            f"Collection: {info['count']} items, {info['dim']}-d, {info['metric']}, "
            f"encoder {info['encoder']['name']}\n"
        )
        show(col, "a philosophy that rejects the authority of the state")
        show(col, "the first humans to land on the Moon")
        show(col, "how plants turn sunlight into energy")
        show(col, "the first humans to land on the Moon", where={"title": {"$ne": "Apollo 11"}})
        show(col, "a famous Greek philosopher and his students", where={"words": {"$gte": 150}})
        show(col, "wars and battles", where={"title": {"$in": ["Alabama", "Algeria", "Angola"]}})


if __name__ == "__main__":
    main()
