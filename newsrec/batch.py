"""Offline batch scoring: many (user or query, news id) pairs through the reranker, into score-cache rows.

Input (parquet): `news_id` plus `user` (a user id of the corpus) and/or `query` (search text); a pair
without either is scored for the "For you" feed of a reader without history.
Output: a folder of parquet parts with one row per pair: `model, key, score, user, query, news_id,
content_hash`. `key` is the score-cache key the app computes for the same (reranker, instruction,
query, profile, content, corpus time), so `import_scores` makes the app serve these scores from cache.

- Pairs are grouped by request (user, query): one reranker call per group, so the engine computes the
  shared prefix (instruction, query, interests, profile photo) once per group.
- Groups are cut into chunks of ~`chunk_pairs` pairs in a fixed order; each chunk is written as its own
  part, atomically. A rerun skips parts already written (resumable), after checking the manifest says
  the folder belongs to the same input and model settings.
- engine="local" scores in this process; engine="ray" runs the same scorer on Ray Data `map_batches`,
  one reranker per worker (`ray.init(address=...)` joins a cluster; none starts a local one).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsrec.cache import ScoreCache, score_key
from newsrec.config import Settings
from newsrec.errors import InputError, ServiceUnavailableError
from newsrec.ray_cluster import ensure_ray
from newsrec.types import Candidate, RerankRequest

__all__ = ["BatchStats", "batch_rerank", "import_scores", "read_pairs"]

log = logging.getLogger(__name__)

COLUMNS = ["model", "key", "score", "user", "query", "news_id", "content_hash"]
CHUNK_PAIRS = 4096


@dataclass
class BatchStats:
    pairs: int
    groups: int
    chunks: int
    skipped_chunks: int  # already written by an earlier run
    unknown_news: int  # pairs whose news id is not in the corpus (not scored)
    blocked: int = 0  # pairs an editorial block rule keeps from their reader (not scored; newsrec/editorial)
    seconds: float = 0.0  # end to end: corpus, index, profiles, model load, scoring, writing
    scoring_seconds: float = 0.0  # model load, scoring and writing of the chunks this run computed
    scored_pairs: int = 0

    @property
    def pairs_per_second(self) -> float:
        return self.scored_pairs / self.scoring_seconds if self.scoring_seconds else 0.0


# --- input ---------------------------------------------------------------------------------------


def read_pairs(path: str | Path) -> Any:
    """The pairs table with `user`, `query`, `news_id` columns (missing user/query filled with "")."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        pairs = pd.read_parquet(path)
    except Exception as error:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise InputError(f"{path}: not a readable parquet file ({error})") from None
    if "news_id" not in pairs.columns:
        raise InputError(f"{path}: needs a `news_id` column; it has {', '.join(map(str, pairs.columns))}")
    if "user" not in pairs.columns and "query" not in pairs.columns:
        raise InputError(f"{path}: needs a `user` or a `query` column (or both) next to `news_id`")
    for column in ("user", "query"):
        pairs[column] = pairs[column].fillna("").astype(str).str.strip() if column in pairs else ""
    pairs["news_id"] = pairs["news_id"].astype(str)
    return pairs[["user", "query", "news_id"]]


def _chunks(pairs: Any, chunk_pairs: int) -> list[list[tuple[str, str, list[str]]]]:
    """Groups (user, query, news ids) in a fixed order, cut into chunks of about chunk_pairs pairs."""
    chunks: list[list[tuple[str, str, list[str]]]] = [[]]
    size = 0
    for (user, query), frame in pairs.groupby(["user", "query"], sort=True):
        news_ids = list(dict.fromkeys(frame["news_id"]))  # a pair listed twice is scored once
        if size and size + len(news_ids) > chunk_pairs:
            chunks.append([])
            size = 0
        chunks[-1].append((str(user), str(query), news_ids))
        size += len(news_ids)
    return [chunk for chunk in chunks if chunk]


# --- scoring ---------------------------------------------------------------------------------------


@dataclass
class Group:
    """One request's scoring job: everything the worker needs, computed where the index is."""

    user: str
    query: str
    request: RerankRequest
    candidates: list[Candidate]
    profile_key: str
    now: str


class GroupScorer:
    """The reranker, turning groups into output rows. One per process (Ray: one per worker)."""

    def __init__(self, settings: Settings, image_root: str | None, reranker: Any = None):
        if reranker is None:
            from newsrec.rerankers import get_reranker

            options: dict[str, Any] = {"settings": settings, "image_root": image_root, "embedder": None}
            if settings.reranker_model:
                options["model"] = settings.reranker_model
            reranker = get_reranker(settings.resolved_reranker, **options)
        self.reranker = reranker

    def rows(self, group: Group) -> list[dict[str, Any]]:
        scores = self.reranker.score(group.request, group.candidates)
        if getattr(scores, "notice", ""):  # a remote reranker fell back to lite: those are not its scores
            raise ServiceUnavailableError(f"batch scoring stopped: {scores.notice}")
        model = self.reranker.name
        out = []
        for candidate, score in zip(group.candidates, scores, strict=True):
            digest = candidate.item.content_hash()
            key = score_key(model, group.request.instruction, group.query, group.profile_key, digest, group.now)
            out.append(
                {
                    "model": model,
                    "key": key,
                    "score": float(score),
                    "user": group.user,
                    "query": group.query,
                    "news_id": candidate.item.id,
                    "content_hash": digest,
                }
            )
        return out

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        """Ray Data map_batches entry: a batch of pickled groups -> columns of output rows (plus `chunk`)."""
        rows = []
        for chunk, payload in zip(batch["chunk"], batch["payload"], strict=True):
            rows.extend({**row, "chunk": int(chunk)} for row in self.rows(pickle.loads(payload)))
        return {column: [row[column] for row in rows] for column in [*COLUMNS, "chunk"]}


# --- driver ---------------------------------------------------------------------------------------------


def batch_rerank(
    pairs_path: str | Path,
    out_dir: str | Path,
    settings: Settings | None = None,
    engine: str = "local",
    chunk_pairs: int = CHUNK_PAIRS,
    ray_address: str | None = None,
    ray_workers: int = 1,
    ray_gpus: float = 0,
    on_chunk: Callable[[int, int], None] | None = None,
    embedder: Any = None,
    rules: str = "live",
) -> BatchStats:
    """Score every pair of `pairs_path` into parquet parts under `out_dir` (see the module docstring).

    `embedder` (default: the configured one) gives the profiles and query vectors, as in the app. `rules`
    (live | draft | none): pairs whose story a block rule of that set keeps from their reader are not scored,
    since no feed will show them (the other rules act when feeds are made, on top of these scores).
    """
    import time

    from newsrec.pipeline import Recommender

    if engine not in {"local", "ray"}:
        raise InputError(f"unknown engine {engine!r}; choose one of: local, ray")
    started = time.perf_counter()
    settings = settings or Settings.from_env()
    pairs = read_pairs(pairs_path)
    out_dir = Path(out_dir)
    # The driver owns the corpus and the index (profiles and candidate vectors); workers only score.
    recommender = Recommender.from_settings(settings, embedder=embedder, reranker=_NoReranker())
    known = pairs["news_id"].isin(set(recommender.corpus.news)) & pairs["news_id"].map(recommender.index.has)
    unknown = int((~known).sum())
    if unknown:
        log.warning("%d pairs name news ids that are not in corpus %s: skipped", unknown, settings.corpus)
    blocked, rules_version = _blocked_by_rules(recommender, pairs, known, rules)
    chunks = _chunks(pairs[known & ~blocked], max(1, int(chunk_pairs)))
    _check_manifest(out_dir, pairs_path, settings, chunk_pairs, rules_version)
    pending = [i for i in range(len(chunks)) if not _part(out_dir, i).exists()]
    stats = BatchStats(len(pairs), sum(len(c) for c in chunks), len(chunks), len(chunks) - len(pending), unknown)
    stats.blocked = int((known & blocked).sum())
    if pending:
        groups = {i: [_group(recommender, settings, *spec) for spec in chunks[i]] for i in pending}
        stats.scored_pairs = sum(len(group.candidates) for members in groups.values() for group in members)
        scoring_started = time.perf_counter()
        run = _run_local if engine == "local" else _run_ray
        ray_options = {"address": ray_address, "workers": ray_workers, "gpus": ray_gpus}
        run(groups, out_dir, settings, str(recommender.corpus.root), on_chunk, ray_options)
        stats.scoring_seconds = time.perf_counter() - scoring_started
    stats.seconds = time.perf_counter() - started
    return stats


def _blocked_by_rules(recommender: Any, pairs: Any, known: Any, which: str) -> tuple[Any, str]:
    """(mask of pairs a block rule keeps from their reader, "live:3"-style name of the rule set or "")."""
    from newsrec.editorial.feed import EditorialFeeds

    feeds = EditorialFeeds(recommender, which)
    mask = known & False
    if feeds.ruleset is None or not any(rule.kind == "block" for rule in feeds.ruleset.rules):
        return mask, ""
    for user, rows in pairs[known].groupby("user", sort=True):
        if user and user not in recommender.corpus.users:
            continue  # an unknown user fails later with its own message
        mask.loc[rows.index] = feeds.blocked(user, rows["news_id"].tolist())
    return mask, f"{which}:{feeds.ruleset.version}"


def _group(recommender: Any, settings: Settings, user: str, query: str, news_ids: list[str]) -> Group:
    from newsrec.data.corpus import format_time

    profile = recommender.profile(user) if user else recommender.profile_from_history([])
    query_vector = recommender.embedder.embed_queries([query])[0] if query else None
    vectors = recommender.index.embeddings(news_ids)
    candidates = [
        Candidate(recommender.corpus.news[news_id], 0.0, rank, vector)
        for rank, (news_id, vector) in enumerate(zip(news_ids, vectors, strict=True), 1)
    ]
    request = RerankRequest(
        query=query, profile=profile, instruction=settings.instruction, now=recommender.now, query_vector=query_vector
    )
    return Group(user, query, request, candidates, profile.fingerprint(), format_time(recommender.now) or "")


def _run_local(groups, out_dir, settings, image_root, on_chunk, _ray_options) -> None:
    scorer = GroupScorer(settings, image_root)
    for done, (chunk, members) in enumerate(groups.items(), 1):
        _write_part(out_dir, chunk, [row for group in members for row in scorer.rows(group)])
        if on_chunk:
            on_chunk(done, len(groups))


def _run_ray(groups, out_dir, settings, image_root, on_chunk, ray_options) -> None:
    ray = ensure_ray(ray_options["address"], "--engine ray needs Ray Data: pip install 'ray[data]'")
    workers, gpus = ray_options["workers"], ray_options["gpus"]
    items = [{"chunk": chunk, "payload": pickle.dumps(group)} for chunk, members in groups.items() for group in members]
    expected = {chunk: sum(len(g.candidates) for g in members) for chunk, members in groups.items()}
    dataset = ray.data.from_items(items).map_batches(
        GroupScorer,
        fn_constructor_kwargs={"settings": settings, "image_root": image_root},
        concurrency=max(1, int(workers)),
        batch_size=1,  # one group per call: the group is the unit the engine batches internally
        num_cpus=1,
        num_gpus=gpus,  # 1 on GPU workers: each holds its own reranker on its own GPU
    )
    pending: dict[int, list[dict]] = {chunk: [] for chunk in groups}
    done = 0
    for batch in dataset.iter_batches(batch_format="pandas", batch_size=None):
        for chunk, frame in batch.groupby("chunk"):
            pending[int(chunk)].extend(frame.drop(columns="chunk").to_dict("records"))
            if len(pending[int(chunk)]) == expected[int(chunk)]:  # a finished chunk is written at once
                _write_part(out_dir, int(chunk), pending.pop(int(chunk)))
                done += 1
                if on_chunk:
                    on_chunk(done, len(groups))
    if pending:
        raise RuntimeError(f"Ray returned incomplete chunks {sorted(pending)}")


# --- output ------------------------------------------------------------------------------------------


def _part(out_dir: Path, chunk: int) -> Path:
    return out_dir / f"part-{chunk:05d}.parquet"


def _write_part(out_dir: Path, chunk: int, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    final = _part(out_dir, chunk)
    temporary = final.with_suffix(".parquet.tmp")
    pd.DataFrame(rows, columns=COLUMNS).to_parquet(temporary, index=False)
    os.replace(temporary, final)  # a part exists only complete: a crash leaves no half-written chunk


def _check_manifest(
    out_dir: Path, pairs_path: str | Path, settings: Settings, chunk_pairs: int, rules: str = ""
) -> None:
    digest = hashlib.sha256(Path(pairs_path).read_bytes()).hexdigest()
    manifest = {
        "pairs_sha256": digest,
        "reranker": settings.resolved_reranker,
        "reranker_model": settings.reranker_model,
        "reranker_url": settings.reranker_url,
        "instruction": settings.instruction,
        "corpus": settings.corpus,
        "chunk_pairs": int(chunk_pairs),
        **({"rules": rules} if rules else {}),  # the rule set whose blocks left pairs out, when one did
    }
    path = out_dir / "manifest.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != manifest:
            changed = sorted(key for key in manifest if previous.get(key) != manifest[key])
            raise InputError(
                f"{out_dir} holds scores of another run (differs in {', '.join(changed)}): use a new --out"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2))


def iter_scores(path: str | Path) -> Iterator[Any]:
    """Score tables of a batch output folder (or one parquet file)."""
    import pandas as pd

    path = Path(path)
    files = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise InputError(f"{path}: no score parts (part-*.parquet) to import")
    for file in files:
        frame = pd.read_parquet(file)
        missing = {"key", "score"} - set(frame.columns)
        if missing:
            raise InputError(f"{file}: missing columns {sorted(missing)}")
        yield frame


def import_scores(path: str | Path, cache: ScoreCache) -> dict[str, int]:
    """Load batch scores into the score cache; returns rows imported per model."""
    counts: dict[str, int] = {}
    for frame in iter_scores(path):
        cache.put_many(zip(frame["key"].astype(str), frame["score"].astype(float), strict=True))
        for model, count in frame["model"].value_counts().items() if "model" in frame else []:
            counts[str(model)] = counts.get(str(model), 0) + int(count)
    return counts


class _NoReranker:
    """The driver needs the pipeline's profiles and index, not a reranker (workers load their own)."""

    name = "none"

    def score(self, request: RerankRequest, candidates: list[Candidate]) -> list[float]:
        raise RuntimeError("the batch driver does not score")
