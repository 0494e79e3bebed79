"""Other writers for `bench load --writers N`: N concurrent `ingest` runs and one `index --rebuild` against the
corpus the app serves, then the check that nothing was lost (issue 20, "Numbers").

Each writer is a separate `python -m newsrec` process, as an editor's shell would run it, against the app's
NEWSREC_HOME. Its input is a small synthetic news file written here (distinct ids per writer), so the union of
all writes is known and the corpus and the index can be compared with it afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from newsrec.config import REPO_ROOT, Settings

log = logging.getLogger(__name__)

TOPICS = ["battery", "football", "harvest", "election", "rates", "vaccine", "satellite", "festival"]


def write_news(folder: Path, prefix: str, items: int, users: int = 0) -> Path:
    """news.jsonl with ids `<prefix>-<n>` (+ users.jsonl whose readers read these items); returns news.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"{prefix}-{n}" for n in range(items)]
    rows = [
        {
            "id": news_id,
            "title": f"{TOPICS[n % len(TOPICS)].title()} report {news_id}",
            "body": f"A synthetic {TOPICS[n % len(TOPICS)]} story for the load benchmark, number {n} of {prefix}.",
            "category": TOPICS[n % len(TOPICS)],
            "published_at": f"2026-01-{1 + n % 28:02d}T12:00:00Z",
        }
        for n, news_id in enumerate(ids)
    ]
    (folder / "news.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    if users:
        readers = [{"id": f"reader{n}", "history": ids[(n * 7) % items :][:6]} for n in range(users)]
        (folder / "users.jsonl").write_text("".join(json.dumps(row) + "\n" for row in readers), encoding="utf-8")
    return folder / "news.jsonl"


def seed_corpus(settings: Settings, corpus: str, folder: Path, items: int = 200, users: int = 20) -> set[str]:
    """Create the served corpus when it does not exist yet; returns its news ids."""
    from newsrec.data.corpus import corpus_exists, load_corpus
    from newsrec.data.ingest import ingest

    if not corpus_exists(settings.corpus_dir(corpus)):
        ingest(write_news(folder / "seed", "seed", items, users), settings, corpus=corpus)
    return set(load_corpus(settings, corpus).news)


@dataclass
class Writer:
    name: str
    argv: list[str]
    ids: set[str] = field(default_factory=set)  # what it adds to the corpus (none for the rebuild)
    process: subprocess.Popen | None = None
    started: float = 0.0
    ended: float = 0.0
    returncode: int | None = None
    stderr_tail: str = ""


def plan(corpus: str, ingests: int, items: int, folder: Path) -> list[Writer]:
    """`ingests` ingest runs (distinct ids) and one `index --rebuild`, all on `corpus`."""
    writers = []
    for number in range(ingests):
        source = write_news(folder / f"writer{number}", f"w{number}", items)
        ids = {f"w{number}-{n}" for n in range(items)}
        writers.append(Writer(f"ingest {number}", ["ingest", str(source), "--corpus", corpus], ids))
    if ingests:
        writers.append(Writer("index --rebuild", ["index", "--corpus", corpus, "--rebuild"]))
    return writers


def start(
    writers: list[Writer], folder: Path, clock_zero: float, timeout: float = 1800, nice: int = 0
) -> list[threading.Thread]:
    """Start every writer at once, at CPU niceness `nice`; a thread per writer notes when it ends (join them
    with `wait`)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    watchers = []
    for writer in writers:
        log_path = folder / f"{writer.name.replace(' ', '_')}.log"
        writer.started = time.perf_counter() - clock_zero
        writer.process = subprocess.Popen(
            [*(["nice", "-n", str(nice)] if nice else []), sys.executable, "-m", "newsrec", *writer.argv],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_path.open("wb"),
        )
        watcher = threading.Thread(target=_watch, args=(writer, log_path, clock_zero, timeout), daemon=True)
        watcher.start()
        watchers.append(watcher)
    return watchers


def _watch(writer: Writer, log_path: Path, clock_zero: float, timeout: float) -> None:
    assert writer.process is not None
    try:
        writer.returncode = writer.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        writer.process.kill()
        writer.returncode = writer.process.wait()
    writer.ended = time.perf_counter() - clock_zero
    if writer.returncode:
        writer.stderr_tail = log_path.read_text(encoding="utf-8", errors="replace")[-600:]


def wait(watchers: list[threading.Thread]) -> None:
    for watcher in watchers:
        watcher.join()


def running_span(writers: list[Writer]) -> tuple[float, float]:
    """(first start, last end) of the writers, in seconds on the benchmark's clock."""
    return min(w.started for w in writers), max(w.ended for w in writers)


def counts(settings: Settings, corpus: str, expected: set[str]) -> dict:
    """Corpus and index contents against the union of all writes (ids, not only counts)."""
    embedder = settings.resolved_embedder
    from newsrec.data.corpus import load_corpus
    from newsrec.index import chroma_client
    from newsrec.index_health import write_lock

    news = set(load_corpus(settings, corpus).news)
    with write_lock(settings):
        client = chroma_client(settings)
        stored: dict[str, set[str]] = {}
        for collection in client.list_collections():
            metadata = collection.metadata or {}  # this corpus under the app's embedder (not older embedders')
            ours = metadata.get("corpus") == corpus and str(metadata.get("embedder", "")).startswith(embedder)
            if ours and not metadata.get("staging"):
                stored[collection.name] = set(collection.get(include=[])["ids"])
    figures = {
        "expected_items": len(expected),
        "corpus_items": len(news),
        "corpus_missing": len(expected - news),
        "index": {name: len(ids) for name, ids in sorted(stored.items())},
        "index_missing": {name: len(expected - ids) for name, ids in sorted(stored.items())},
    }
    figures["nothing_lost"] = news == expected and bool(stored) and all(ids == expected for ids in stored.values())
    return figures


def report(writers: list[Writer]) -> list[dict]:
    return [
        {
            "writer": writer.name,
            "items": len(writer.ids),
            "started_s": round(writer.started, 1),
            "ended_s": round(writer.ended, 1),
            "returncode": writer.returncode,
            **({"stderr_tail": writer.stderr_tail} if writer.stderr_tail else {}),
        }
        for writer in writers
    ]
