"""`bench scale --stories CORPUS`: the whole `recommend` at 10^5-10^6 stories made from a real corpus.

A source corpus (e.g. NeMig-en, ingested and indexed) gives the vocabulary, the readers and the clicks:

- story i takes the first half of one source title and the second half of another from the same category,
  the body of a third, and the first one's category, subcategory, publisher and date (moved by up to
  three days); so titles, bodies, the lexical index and the IDF table have the source's words and spread;
- its vector is the normalised mix of the three sources' stored vectors plus a little noise (`derived`,
  the default), or the embedder's own encoding of its text (`encoded`: about 320 stories/s with the lite
  encoder on 2 cores, so ~5 min per 100,000 and ~50 min per million). Derived vectors lie in the same
  space as real ones, so queries and interests find neighbours as they would; what they skip is the
  encoder's time, which `bench pipeline` and `index` measure;
- readers keep their real histories, each read mapped to a story made from the read's title; the
  source's impressions are mapped the same way, so the CTR prior and the trending source are live.

Everything after that is the product's own code: `NewsIndex.sync` (Chroma with the HNSW settings for the
size), `LexicalIndex.build`, the `Recommender` with the lite reranker and the CTR-prior blend, and
`recommend` per request (For-you feeds of the mapped readers, queries of two to three headline words,
cold-start feeds of a reader without history). Only a learned model is absent: none is trained here.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import numpy as np

from newsrec.data.corpus import Corpus
from newsrec.lexical import STOPWORDS
from newsrec.types import HistoryEntry, Impression, NewsItem, User

DERIVED_NOISE = 0.15  # norm of the Gaussian noise added to a derived vector (a unit mix of three sources)
MAX_DAYS_SHIFT = 3.0


@dataclass(frozen=True)
class Recipe:
    """Which source stories (rows of the source's item list) one synthetic story is made of."""

    head: int  # first half of its title, its category, publisher and date
    tail: int  # second half of its title
    body: int


def recipes(source: Sequence[NewsItem], count: int, seed: int) -> list[Recipe]:
    """`count` recipes; every source story heads about count / len(source) of them (each one at least once
    while count allows), and the title's second half comes from the same category."""
    rng = np.random.default_rng(seed)
    n = len(source)
    by_category: dict[str, list[int]] = {}
    for row, item in enumerate(source):
        by_category.setdefault(item.category, []).append(row)
    heads = np.concatenate([np.arange(n)] * (count // n) + [rng.permutation(n)[: count % n]]).astype(np.int64)
    picks = rng.random(count)
    bodies = rng.integers(0, n, count)
    out = []
    for i in range(count):
        head = int(heads[i])
        peers = by_category[source[head].category]
        out.append(Recipe(head, peers[int(picks[i] * len(peers))], int(bodies[i])))
    return out


def _half(title: str, first: bool) -> str:
    words = title.split()
    cut = max(1, len(words) // 2)
    return " ".join(words[:cut] if first else words[cut:])


def synthetic_corpus(source: Corpus, count: int, seed: int = 0, name: str = "scale") -> tuple[Corpus, list[Recipe]]:
    """A corpus of `count` stories recombined from `source`, with its readers and impressions mapped onto them."""
    items = list(source.news.values())
    plan = recipes(items, count, seed)
    rng = np.random.default_rng(seed + 1)
    shifts = rng.uniform(-MAX_DAYS_SHIFT, MAX_DAYS_SHIFT, count)
    news: dict[str, NewsItem] = {}
    made_from: dict[str, list[str]] = {}  # source id -> the stories it heads, in order
    for i, recipe in enumerate(plan):
        head, tail, body = items[recipe.head], items[recipe.tail], items[recipe.body]
        title = f"{_half(head.title, True)} {_half(tail.title, False)}".strip()
        story = NewsItem(
            id=f"s{i}",
            title=title,
            body=body.body,
            category=head.category,
            subcategory=head.subcategory,
            language=head.language,
            published_at=head.published_at + timedelta(days=float(shifts[i])) if head.published_at else None,
            source=head.source,
        )
        news[story.id] = story
        made_from.setdefault(head.id, []).append(story.id)

    def mapped(news_id: str, salt: int) -> str | None:
        stories = made_from.get(news_id)
        return stories[salt % len(stories)] if stories else None

    users: dict[str, User] = {}
    for u, user in enumerate(sorted(source.users)):
        history = []
        for j, entry in enumerate(source.users[user].history):
            story = mapped(entry.news_id, u + j)
            if story is not None:
                history.append(HistoryEntry(news_id=story, timestamp=entry.timestamp))
        users[user] = User(id=user, history=history)
    impressions = []
    for n, impression in enumerate(source.impressions):
        shown = [
            (mapped(c, n + j), label)
            for j, (c, label) in enumerate(zip(impression.candidates, impression.labels, strict=False))
        ]
        shown = [(c, label) for c, label in shown if c is not None]
        if shown:
            history = [h for j, i in enumerate(impression.history) if (h := mapped(i, n + j)) is not None]
            impressions.append(
                Impression(
                    id=impression.id,
                    user_id=impression.user_id,
                    history=history,
                    candidates=[c for c, _ in shown],
                    labels=[label for _, label in shown],
                    timestamp=impression.timestamp,
                )
            )
    return Corpus(name=name, root=source.root, news=news, users=users, impressions=impressions), plan


class DerivedEmbedder:
    """The source's embedder for queries; for a synthetic story, the mix of its sources' stored vectors.

    Attributes (name, dim, match ranges, same-story cosine) are the source embedder's, so the request path
    treats these vectors exactly as the embedder's own.
    """

    def __init__(self, embedder, source_vectors: np.ndarray, plan: Sequence[Recipe], seed: int = 0):
        self._embedder = embedder
        self._vectors = np.asarray(source_vectors, dtype=np.float32)
        self._plan = plan
        self._seed = seed
        self.documents = 0  # stories given vectors

    def __getattr__(self, name: str):
        return getattr(self._embedder, name)

    def embed_queries(self, texts):
        return self._embedder.embed_queries(texts)

    def embed_documents(self, items: Sequence[NewsItem]) -> np.ndarray:
        rows = [int(item.id[1:]) for item in items]
        heads = self._vectors[[self._plan[r].head for r in rows]]
        tails = self._vectors[[self._plan[r].tail for r in rows]]
        bodies = self._vectors[[self._plan[r].body for r in rows]]
        rng = np.random.default_rng([self._seed, rows[0] if rows else 0, len(rows)])
        noise = rng.standard_normal(heads.shape).astype(np.float32) * (DERIVED_NOISE / np.sqrt(heads.shape[1]))
        mixed = heads + 0.6 * tails + 0.3 * bodies + noise
        self.documents += len(items)
        return mixed / np.linalg.norm(mixed, axis=1, keepdims=True)


def headline_queries(source: Sequence[NewsItem], count: int, seed: int) -> list[str]:
    """`count` queries of two or three consecutive content words of random source headlines."""
    rng = np.random.default_rng(seed + 2)
    queries: list[str] = []
    for _ in range(count * 20):
        if len(queries) >= count:
            break
        words = [w.strip(",.:;!?\"'()") for w in source[int(rng.integers(len(source)))].title.split()]
        words = [w for w in words if len(w) > 2 and w.lower() not in STOPWORDS]
        if len(words) >= 2:
            size = int(rng.integers(2, 4))
            start = int(rng.integers(0, max(1, len(words) - size + 1)))
            queries.append(" ".join(words[start : start + size]))
    return queries


def _percentiles(values: Sequence[float], prefix: str) -> dict[str, float | None]:
    if not values:
        return {f"{prefix}_p{q}_ms": None for q in (50, 95, 99)}
    return {f"{prefix}_p{q}_ms": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}


def measure_stories(
    source: Corpus,
    source_vectors: np.ndarray,
    embedder,
    items: int,
    *,
    settings,
    readers: int,
    queries: int,
    cold: int,
    seed: int,
    vectors: str = "derived",
) -> dict:
    """Build a synthetic corpus of `items` stories in `settings.home` and time `recommend` on it."""
    from newsrec.bench import disk_mb, rss_bytes
    from newsrec.index import NewsIndex
    from newsrec.lexical import LexicalIndex
    from newsrec.pipeline import Recommender
    from newsrec.rerankers import get_reranker

    timings: dict[str, float] = {}
    started = time.perf_counter()
    corpus, plan = synthetic_corpus(source, items, seed)
    corpus = replace(corpus, root=Path(settings.home) / "corpus")
    timings["stories_seconds"] = time.perf_counter() - started

    documents = DerivedEmbedder(embedder, source_vectors, plan, seed) if vectors == "derived" else embedder
    started = time.perf_counter()
    index = NewsIndex(settings, corpus.name, documents)
    index.sync(corpus)
    timings["index_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    lexical = LexicalIndex.build(list(corpus.news.values()))
    timings["lexical_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    reranker = get_reranker("lite", embedder=documents, lexical=lexical)
    recommender = Recommender(settings, corpus, documents, reranker, index, lexical=lexical)
    index.embeddings([])  # the stored vectors are read into memory at start-up, not in the first request
    timings["recommender_seconds"] = time.perf_counter() - started
    gc.collect()
    rss = rss_bytes()

    with_history = sorted(u for u, user in corpus.users.items() if len(user.history) >= 2)
    rng = np.random.default_rng(seed + 3)
    chosen = [with_history[int(i)] for i in rng.permutation(len(with_history))[:readers]]
    asked = headline_queries(list(source.news.values()), queries, seed)
    warm = chosen[0] if chosen else "guest"
    recommender.recommend(warm)  # warm-up: lazy imports, the first BLAS call
    recommender.recommend(warm, query=asked[0] if asked else "news")  # and the query encoder's model load
    feeds, searches, colds, profiles = [], [], [], []
    stages: dict[str, list[float]] = {"retrieve": [], "rerank": [], "present": []}

    def timed(result) -> float:
        for stage, values in stages.items():
            values.append(result.timings_ms[stage])
        return result.timings_ms["total"]

    for user in chosen:
        # A reader's profile is built once and kept (`Recommender.profile`); timed apart, as `bench pipeline` does.
        tick = time.perf_counter()
        recommender.profile(user)
        profiles.append((time.perf_counter() - tick) * 1000)
        feeds.append(timed(recommender.recommend(user)))
    for n, query in enumerate(asked):
        user = chosen[n % len(chosen)] if chosen else "guest"
        searches.append(timed(recommender.recommend(user, query=query)))
    for n in range(cold):
        profile = recommender.profile_from_history([], user_id=f"new-{n}")
        colds.append(timed(recommender.recommend("guest", profile=profile, k=10 + n % 3)))

    disk = disk_mb(Path(settings.home))
    return {
        "items": items,
        "vectors": vectors,
        **{key: round(value, 3) for key, value in timings.items()},  # ms resolution: a small build takes <0.05 s
        "rss_mb": round(rss / 2**20, 1),
        "disk_mb": disk,
        "readers": len(feeds),
        **_percentiles(feeds, "for_you"),
        "queries": len(searches),
        **_percentiles(searches, "query"),
        "cold_requests": len(colds),
        **_percentiles(colds, "cold"),
        **_percentiles(feeds + searches + colds, "recommend"),
        **{f"{stage}_p50_ms": round(float(np.percentile(v, 50)), 1) for stage, v in stages.items() if v},
        **_percentiles(profiles, "profile_build"),
    }
