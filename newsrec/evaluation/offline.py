"""Offline evaluation: score every logged impression's candidate list with each scorer and measure it.

    log = load_mind_log("data/nemig-en/news.tsv", "data/nemig-en/behaviors.tsv")
    scorers = make_scorers(["random", "popularity", "retrieval", "rerank"], log.impressions, recommender)
    report = evaluate(sample(log.impressions, 2000), scorers, ItemContext.from_recommender(recommender, log))

A scorer sees one impression (history and candidates, never the labels) and returns one score per
candidate. The pipeline scorers build the profile from the impression's own history, so a user's later
reading never leaks into an earlier impression.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from newsrec.config import Settings
from newsrec.errors import InputError
from newsrec.evaluation import metrics
from newsrec.recall import ForYouRecall
from newsrec.types import Impression, NewsItem

if TYPE_CHECKING:
    import pandas as pd

    from newsrec.learning.stage import SecondStage
    from newsrec.pipeline import Recommender

log = logging.getLogger(__name__)

SCORER_NAMES = ("random", "popularity", "retrieval", "rerank", "learned")
BASELINE = "popularity"  # paired differences are taken against it
METRIC_COLUMNS = (*metrics.ACCURACY_METRICS, *metrics.BEYOND_METRICS)


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, impression: Impression) -> list[float]:
        """One score per candidate of `impression`, higher = shown first. Must not read `impression.labels`."""
        ...


class RandomScorer:
    """Uniform random scores, seeded per impression: the floor every other scorer must clear (AUC 0.5)."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def score(self, impression: Impression) -> list[float]:
        key = metrics.tie_key(f"{self.seed}:{impression.id}", len(impression.candidates))
        return [float(x) for x in key]


class PopularityScorer:
    """Exposure-aware popularity: each candidate's smoothed (position-corrected) CTR in the counted log.

    `impressions` are what may be counted: the training users' under the user split. Under `--split none`
    they are the whole log, and the scored impression's own clicks and shows are left out of its scores.
    """

    name = "popularity"

    def __init__(self, impressions: Sequence[Impression], news: dict[str, NewsItem] | None = None):
        from newsrec.learning.popularity import ExposurePopularity

        self.impressions = {impression.id: impression for impression in impressions}
        self.model = ExposurePopularity.fit(self.impressions.values(), news or {})

    def score(self, impression: Impression) -> list[float]:
        own = self.impressions.get(impression.id)  # only ever the very impression being scored
        return [float(x) for x in self.model.ctr(impression.candidates, leave_out=own)]


class PipelineScores:
    """The first stage's and a second stage's scores for one impression in one call, kept for reuse."""

    def __init__(
        self,
        recommender: Recommender,
        stage: SecondStage | None = None,
        counted: dict[str, Impression] | None = None,
        max_cached: int = 4096,
        profiles: dict | None = None,
    ):
        self.recommender = recommender
        self.profiles = profiles if profiles is not None else {}  # impression id -> profile, shared by stages
        self.stage = stage or recommender.stage
        # the first stage's trending term counts what the stage's prior counted (training users' clicks)
        self.recall = ForYouRecall(self.stage.prior, recommender.corpus.news, recommender.settings.trend_weight)
        self.counted = counted or {}  # impressions the stage's prior counted: each is left out of its own scores
        self.max_cached = max_cached
        self._cache: dict[str, tuple[list[float], list[float]]] = {}
        self.seconds = 0.0

    def get(self, impression: Impression) -> tuple[list[float], list[float]]:
        if impression.id not in self._cache:
            started = time.perf_counter()
            if impression.id not in self.profiles:
                if len(self.profiles) >= self.max_cached:
                    self.profiles.pop(next(iter(self.profiles)))
                history = impression.history
                self.profiles[impression.id] = self.recommender.profile_from_history(history, impression.user_id)
            profile = self.profiles[impression.id]
            scores = self.recommender.score_candidates(
                profile,
                impression.candidates,
                stage=self.stage,
                leave_out=self.counted.get(impression.id),
                recall=self.recall,
            )
            self.seconds += time.perf_counter() - started
            if len(self._cache) >= self.max_cached:
                self._cache.pop(next(iter(self._cache)))
            self._cache[impression.id] = scores
        return self._cache[impression.id]


class RetrievalScorer:
    """The first stage's score: similarity to the profile's closest interest plus the bounded prior term."""

    name = "retrieval"

    def __init__(self, shared: PipelineScores):
        self.shared = shared

    def score(self, impression: Impression) -> list[float]:
        return self.shared.get(impression)[0]


class RerankScorer:
    """A second stage's score: `rerank` = the pipeline's (blend or saved model), `learned` = a freshly trained one."""

    def __init__(self, shared: PipelineScores, name: str = "rerank"):
        self.shared = shared
        self.name = name

    def score(self, impression: Impression) -> list[float]:
        return self.shared.get(impression)[1]


def split_log(
    impressions: Sequence[Impression], how: str | None = None, seed: int = 0
) -> tuple[list[Impression], list[Impression], str]:
    """(impressions to count and learn from, impressions to measure, the split used).

    `how` None picks "user" for logs with enough users, else "none" (both sides = the whole log).
    """
    from newsrec.evaluation.split import default_split, split_users

    how = how or default_split(impressions)
    if how == "user":
        parts = split_users(impressions, seed=seed)
        return parts.train, parts.test, how
    return list(impressions), list(impressions), how


def make_scorers(
    names: Sequence[str],
    impressions: Sequence[Impression],
    recommender: Recommender | None = None,
    seed: int = 0,
    split: str = "none",
    news: dict[str, NewsItem] | None = None,
    model_kind: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> list[Scorer]:
    """Scorers by name. `impressions` = what they may count or learn from (training users' under `split`
    "user"; the whole log under "none"). `retrieval`, `rerank` and `learned` need a recommender over a
    corpus holding the log's news; `learned` needs the user split.
    """
    unknown = [name for name in names if name not in SCORER_NAMES]
    if unknown:
        raise InputError(f"unknown scorer {unknown[0]!r}; choose from: {', '.join(SCORER_NAMES)}")
    names = list(dict.fromkeys(names))
    if "learned" in names and split != "user":
        raise InputError("scorer 'learned' trains on training users and needs --split user")
    news = news if news is not None else (recommender.corpus.news if recommender is not None else {})
    stages = _stages(names, impressions, recommender, seed, split, model_kind, progress)
    counted = {impression.id: impression for impression in impressions} if split == "none" else {}
    profiles: dict = {}
    shared = {name: PipelineScores(recommender, stage, counted, profiles=profiles) for name, stage in stages.items()}
    scorers: list[Scorer] = []
    for name in names:
        if name == "random":
            scorers.append(RandomScorer(seed))
        elif name == "popularity":
            scorers.append(PopularityScorer(impressions, news))
        elif recommender is None:
            raise InputError(f"scorer {name!r} needs the pipeline: evaluate a corpus (ingested log or demo)")
        elif name == "retrieval":
            scorers.append(RetrievalScorer(shared.get("rerank") or next(iter(shared.values()))))
        else:
            scorers.append(RerankScorer(shared[name], name))
    return scorers


def _stages(names, impressions, recommender, seed, split, model_kind, progress) -> dict[str, SecondStage]:
    """The second stages to measure, with every statistic and model from `impressions` only.

    `rerank` is what the pipeline would run: the corpus's saved model (its kind and features) refitted on
    training users when it has one (the saved model itself saw test users), else the default blend with a
    prior counted here.
    """
    if recommender is None or not ({"retrieval", "rerank", "learned"} & set(names)):
        return {}
    from newsrec.learning.popularity import ExposurePopularity
    from newsrec.learning.stage import BlendStage, LearnedStage
    from newsrec.learning.store import SavedModel, data_hash, load
    from newsrec.learning.train import train

    saved = load(recommender.settings.home, recommender.corpus.name) if split == "user" else None
    if saved is not None and (saved.reranker, saved.embedder) != (recommender.reranker.name, recommender.embedder.name):
        saved = None  # the pipeline would not use it either (see learning/stage.py)
    stages: dict[str, SecondStage] = {}
    trained = {}

    def learned(kind: str, features: list[str] | None = None) -> SecondStage:
        key = (kind, tuple(features or ()))
        if key not in trained:
            fit = train(recommender, impressions, kind, progress, features)
            model = SavedModel(
                ranker=fit.ranker,
                corpus=recommender.corpus.name,
                version="eval",
                data_hash=data_hash(impressions),
                reranker=recommender.reranker.name,
                embedder=recommender.embedder.name,
            )
            trained[key] = LearnedStage(model, fit.builder, recommender.embedder, recommender.lexical)
        return trained[key]

    if "learned" in names:
        stages["learned"] = learned(model_kind)
    if saved is not None:
        stages["rerank"] = learned(saved.ranker.kind, saved.ranker.features)  # the saved model's choice
    else:
        prior = ExposurePopularity.fit(impressions, recommender.corpus.news) if impressions else None
        stages["rerank"] = BlendStage(recommender.reranker, prior, recommender.settings.prior_weight)
    return stages


# --- what the beyond-accuracy metrics need to know about items --------------------------------------


@dataclass
class ItemContext:
    """Item categories, embeddings (optional) and popularity, for the beyond-accuracy metrics."""

    categories: dict[str, str]
    embed: Callable[[list[str]], np.ndarray] | None = None  # ids -> (N, D) rows; None = no diversity
    popularity: Counter[str] = field(default_factory=Counter)
    readers: int = 0  # users behind `popularity`

    @classmethod
    def build(
        cls,
        news: dict[str, NewsItem],
        impressions: Sequence[Impression],
        embed: Callable[[list[str]], np.ndarray] | None = None,
    ) -> ItemContext:
        """Popularity = how many users read or clicked each item anywhere in the log."""
        touched: dict[str, set[str]] = {}
        for impression in impressions:
            seen = touched.setdefault(impression.user_id, set())
            seen.update(impression.history)
            seen.update(c for c, label in zip(impression.candidates, impression.labels, strict=False) if label)
        counts, total = metrics.popularity_table(touched.values())
        categories = {news_id: item.category for news_id, item in news.items()}
        return cls(categories=categories, embed=embed, popularity=counts, readers=total)

    @classmethod
    def from_recommender(cls, recommender: Recommender, impressions: Sequence[Impression]) -> ItemContext:
        index = recommender.index

        def embed(ids: list[str]) -> np.ndarray:
            known = [news_id for news_id in ids if index.has(news_id)]
            return index.embeddings(known) if known else np.zeros((0, 1))

        return cls.build(recommender.corpus.news, impressions, embed)

    def beyond(self, impression: Impression, top: list[str]) -> dict[str, float]:
        history = [self.categories[i] for i in impression.history if i in self.categories]
        return {
            "diversity": metrics.intra_list_diversity(self.embed(top)) if self.embed else math.nan,
            "novelty": metrics.novelty(top, self.popularity, self.readers),
            "calibration": metrics.calibration(history, [self.categories.get(i, "") for i in top]),
        }


# --- the evaluation loop ---------------------------------------------------------------------------


def _empty_frame():
    import pandas as pd

    return pd.DataFrame()


@dataclass
class EvaluationReport:
    rows: pd.DataFrame  # one row per (scorer, impression): ids, n_candidates, every metric
    summary: pd.DataFrame  # one row per scorer: mean and 95% CI (user-level bootstrap) per metric, coverage
    k: int  # top-k of the beyond-accuracy metrics
    seconds: float
    paired: pd.DataFrame = field(default_factory=_empty_frame)  # per scorer and metric: mean difference to BASELINE

    def to_json(self) -> dict:
        return {
            "k": self.k,
            "seconds": round(self.seconds, 2),
            "impressions": int(self.rows["impression_id"].nunique()) if len(self.rows) else 0,
            "scorers": self.summary.to_dict(orient="records"),
            "paired_vs": BASELINE,
            "paired": self.paired.to_dict(orient="records"),
        }


def evaluate(
    impressions: Sequence[Impression],
    scorers: Sequence[Scorer],
    context: ItemContext | None = None,
    k: int = 10,
    progress: Callable[[int, int], None] | None = None,
    dump: Path | str | None = None,
    n_boot: int = 1000,
) -> EvaluationReport:
    """Score each impression with each scorer; metrics per impression, then averaged with bootstrap CIs.

    `dump` writes one JSON line per (impression, scorer) with ids, scores and labels, so anyone can recompute
    the metrics with their own tools.
    """
    if not impressions:
        raise InputError("no impressions to evaluate (is the log empty, or were all its items unknown?)")
    if not scorers:
        raise InputError("no scorers to evaluate")
    started = time.perf_counter()
    rows: list[dict] = []
    seconds = dict.fromkeys((s.name for s in scorers), 0.0)
    handle = open(dump, "w", encoding="utf-8") if dump else None  # noqa: SIM115 - closed in finally
    try:
        for done, impression in enumerate(impressions, 1):
            for scorer in scorers:
                tick = time.perf_counter()
                scores = [float(s) for s in scorer.score(impression)]
                seconds[scorer.name] += time.perf_counter() - tick
                if len(scores) != len(impression.candidates):
                    raise InputError(
                        f"scorer {scorer.name!r} returned {len(scores)} scores for "
                        f"{len(impression.candidates)} candidates (impression {impression.id})"
                    )
                rows.append(_measure(impression, scorer.name, scores, context, k))
                if handle:
                    line = {
                        "impression_id": impression.id,
                        "scorer": scorer.name,
                        "candidates": impression.candidates,
                        "scores": scores,
                        "labels": impression.labels,
                    }
                    handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            if progress:
                progress(done, len(impressions))
    finally:
        if handle:
            handle.close()
    for scorer in scorers:  # retrieval and rerank come from one pass: show its time for both
        if isinstance(scorer, (RetrievalScorer, RerankScorer)):
            seconds[scorer.name] = scorer.shared.seconds
    import pandas as pd  # loaded when measuring, not when the CLI starts

    frame = pd.DataFrame(rows)
    catalogue = {c for impression in impressions for c in impression.candidates}
    summary = summarise(frame, catalogue, n_boot=n_boot)
    summary["seconds"] = summary["scorer"].map(lambda name: round(seconds[name], 3))
    return EvaluationReport(
        rows=frame,
        summary=summary,
        k=k,
        seconds=time.perf_counter() - started,
        paired=paired_differences(frame, n_boot=n_boot),
    )


def _measure(impression: Impression, scorer: str, scores: list[float], context: ItemContext | None, k: int) -> dict:
    order = metrics.rank_order(scores, impression.id)
    top = [impression.candidates[i] for i in order[:k]]
    row = {
        "scorer": scorer,
        "impression_id": impression.id,
        "user_id": impression.user_id,
        "n_candidates": len(impression.candidates),
        "top": top,
        **metrics.accuracy(impression.labels, scores, impression.id),
    }
    row.update(context.beyond(impression, top) if context else dict.fromkeys(metrics.BEYOND_METRICS, math.nan))
    return row


def summarise(frame: pd.DataFrame, catalogue: set[str], n_boot: int = 1000) -> pd.DataFrame:
    """Per scorer: mean and 95% CI of each metric (users resampled), coverage of `catalogue`, counts."""
    import pandas as pd

    out = []
    for scorer, group in frame.groupby("scorer", sort=False):
        record: dict = {"scorer": scorer, "impressions": len(group), "scored": int(group["auc"].notna().sum())}
        for column in METRIC_COLUMNS:
            mean, low, high = metrics.bootstrap_mean_ci(group[column].to_numpy(), group["user_id"].to_numpy(), n_boot)
            record[column], record[f"{column}_low"], record[f"{column}_high"] = mean, low, high
        record["coverage"] = metrics.coverage(group["top"], catalogue)
        out.append(record)
    return pd.DataFrame(out)


def paired_differences(frame: pd.DataFrame, baseline: str = BASELINE, n_boot: int = 1000) -> pd.DataFrame:
    """Per scorer and accuracy metric: mean of (scorer - baseline) over the same impressions, 95% CI by users.

    Pairing removes the impressions' own difficulty from the comparison, so the interval is much narrower
    than the two scorers' separate intervals suggest. Empty when the baseline was not evaluated.
    """
    import pandas as pd

    if frame.empty or baseline not in set(frame["scorer"]):
        return pd.DataFrame()
    base = frame[frame["scorer"] == baseline].set_index("impression_id")
    out = []
    for scorer, group in frame.groupby("scorer", sort=False):
        if scorer == baseline:
            continue
        group = group.set_index("impression_id")
        record: dict = {"scorer": scorer}
        for column in metrics.ACCURACY_METRICS:
            difference = group[column] - base[column].reindex(group.index)
            mean, low, high = metrics.bootstrap_mean_ci(difference.to_numpy(), group["user_id"].to_numpy(), n_boot)
            record[column], record[f"{column}_low"], record[f"{column}_high"] = mean, low, high
        out.append(record)
    return pd.DataFrame(out)


# --- loading logs and sampling ------------------------------------------------------------------------


@dataclass
class ImpressionLog:
    name: str
    news: dict[str, NewsItem]
    impressions: list[Impression]


def load_mind_log(news_path: str | Path, behaviors_path: str | Path | None = None) -> ImpressionLog:
    """A MIND/NeMig log read in place (nothing written): news and impressions, with unknown ids dropped."""
    from newsrec.data.ingest import read_behaviors, read_mind
    from newsrec.data.readers import Batch, ReadOptions

    news_path = Path(news_path).expanduser()
    if not news_path.exists():
        raise InputError(f"{news_path}: no such file")
    batch = Batch()
    read_mind(news_path if news_path.is_file() else news_path / "news.tsv", ReadOptions(), batch)
    if behaviors_path is not None:
        behaviors_path = Path(behaviors_path).expanduser()
        if not behaviors_path.is_file():
            raise InputError(f"{behaviors_path}: no such file")
        if behaviors_path.resolve() != (news_path.parent / "behaviors.tsv").resolve():
            batch.impressions.clear()
            read_behaviors(behaviors_path, batch)
    if not batch.impressions:
        raise InputError(f"no labelled impressions found for {news_path} (MIND behaviors.tsv with id-0/id-1 labels)")
    impressions = [_known_only(impression, batch.news) for impression in batch.impressions.values()]
    impressions = [impression for impression in impressions if impression.candidates]
    name = news_path.parent.name if news_path.is_file() else news_path.name
    return ImpressionLog(name=name, news=batch.news, impressions=impressions)


def corpus_log(settings: Settings, name: str) -> ImpressionLog:
    """The impressions an ingested corpus holds (e.g. `ingest PATH --format mind`)."""
    from newsrec.data.corpus import load_corpus

    corpus = load_corpus(settings, name)
    impressions = [_known_only(impression, corpus.news) for impression in corpus.impressions]
    impressions = [impression for impression in impressions if impression.candidates]
    if not impressions:
        raise InputError(f"corpus {name!r} holds no impressions; ingest a MIND log with behaviors.tsv into it")
    return ImpressionLog(name=name, news=corpus.news, impressions=impressions)


def _known_only(impression: Impression, news: dict[str, NewsItem]) -> Impression:
    pairs = [(c, label) for c, label in zip(impression.candidates, impression.labels, strict=False) if c in news]
    return Impression(
        id=impression.id,
        user_id=impression.user_id,
        history=[i for i in impression.history if i in news],
        candidates=[c for c, _ in pairs],
        labels=[label for _, label in pairs],
        timestamp=impression.timestamp,
    )


def sample(impressions: Sequence[Impression], n: int | None, seed: int = 0) -> list[Impression]:
    """A fixed random sample of n impressions (seeded), kept in log order; all of them when n is None."""
    if n is None or n >= len(impressions):
        return list(impressions)
    if n < 1:
        raise InputError(f"sample size must be at least 1, got {n}")
    picks = np.sort(np.random.default_rng(seed).choice(len(impressions), size=n, replace=False))
    return [impressions[i] for i in picks]
