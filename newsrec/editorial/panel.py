"""Panels of readers and their feeds, computed in one batch: the what-if preview's engine.

A panel is a fixed, sorted list of reader ids of one corpus: the personas, a seeded sample of N readers,
or a segment. `panel_feeds` gives every reader of a panel the For-you feed `Recommender.recommend` would
give them (no query, no filters), but batched:

1. profiles, as the recommender builds them (and caches them);
2. the first stage for all readers at once: one exact matrix product of every reader's interest vectors
   against the corpus's embedding matrix (read once from the index), then the same per-interest
   neighbour counts, trending source and fused score as `Recommender._retrieve`;
3. the second stage per reader over its pool, with the recommender's own stage, post-ranking and
   same-story grouping, so the scores and the order are the pipeline's, not a copy of its formula;
4. the rules, when a rule set is given, through the rules package's `plan_reach` and `apply_rules`.

Why exact search here: the HNSW index exists to make one reader's recall sub-millisecond; a panel needs
the neighbours of thousands of interest vectors at once, and a single (M, D) x (D, N) product over 10k
stories is a few hundred milliseconds on two cores — faster than M HNSW queries and exact. HNSW is an
approximation of this very search (recall@100 of 0.976 against exact on NeMig-en, newsrec/index.py), so
the panel's pools equal `recommend`'s except where HNSW missed a neighbour; the final top-k differs only
when such a miss would have ranked there (measured in docs/audit.md, tested on the personas).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from newsrec.editorial.apply import EditedFeed, apply_rules, plan_reach
from newsrec.editorial.rules import Reader, RuleSet, Scope, reader_from
from newsrec.errors import InputError
from newsrec.explain import explain
from newsrec.learning.features import MODEL_FEATURE
from newsrec.learning.stage import BlendStage, LearnedStage
from newsrec.pipeline import FRESHNESS_PARTS, without_parts
from newsrec.types import Candidate, Reason, Recommendation, RerankRequest, UserProfile

if TYPE_CHECKING:
    from newsrec.pipeline import Recommender

log = logging.getLogger(__name__)

Stage = Literal["rerank", "retrieval"]
MAX_PANEL = 20_000  # readers; a panel's feeds live in memory (about 50 deep cards per reader)
READER_BLOCK = 256  # readers whose interest-by-story similarities are held at once (256 x 5 x 10k floats)
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Panel:
    """Who is previewed: a spec as typed, the corpus, and the reader ids in sorted order."""

    spec: str
    corpus: str
    user_ids: tuple[str, ...]
    description: str = ""
    seed: int = DEFAULT_SEED

    def __len__(self) -> int:
        return len(self.user_ids)


@dataclass
class PanelCost:
    """Where a panel's feeds spent their time, for `bench audit`: wall seconds and process CPU seconds per stage.

    CPU seconds (all threads of the process) say what the work costs on a busy shared machine, where wall
    time mostly measures the other processes.
    """

    readers: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def start() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def add(self, stage: str, since: tuple[float, float]) -> None:
        wall, cpu = since
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - wall
        self.cpu_seconds[stage] = self.cpu_seconds.get(stage, 0.0) + time.process_time() - cpu

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


# --- panels -------------------------------------------------------------------------------------------------


def build_panel(spec: str, recommender: Recommender, *, seed: int = DEFAULT_SEED) -> Panel:
    """`personas` | `sample:N` | `segment:<expr>` | `readers:ID,...` over the recommender's corpus.

    - personas: the corpus's readers that have a persona sentence (the demo's ten simulated readers);
    - sample:N: N readers drawn without replacement by a seeded generator from the sorted reader ids, so
      the same spec and seed give the same panel in every process;
    - segment:<expr>: every reader the rules' `Scope` matches (keys tag=, reads=, lang=; `,` is AND),
      e.g. `segment:reads=sports,lang=en`;
    - readers:ID,...: the listed readers.
    """
    corpus = recommender.corpus
    text = (spec or "").strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    users = sorted(corpus.users)
    if kind == "personas" and not rest:
        ids = [user_id for user_id in users if corpus.users[user_id].persona.strip()]
        if not ids:
            raise InputError(f"corpus {corpus.name!r} has no personas (readers with a persona); use sample:N")
        description = f"{len(ids)} personas of {corpus.name}"
    elif kind == "sample":
        try:
            n = int(rest)
        except ValueError:
            raise InputError(f"panel {text!r}: sample:N needs a whole number of readers, e.g. sample:1000") from None
        if not 1 <= n <= MAX_PANEL:
            raise InputError(f"panel {text!r}: N must be 1..{MAX_PANEL}")
        if not users:
            raise InputError(f"corpus {corpus.name!r} has no readers to sample")
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(users), size=min(n, len(users)), replace=False)
        ids = sorted(users[i] for i in picks)
        description = f"{len(ids)} of {len(users)} readers of {corpus.name} (seed {seed})"
    elif kind == "segment" and rest.strip():
        ids = segment_members(rest.strip(), recommender, users)
        description = f"segment {rest.strip()} of {corpus.name}: {len(ids)} readers"
    elif kind == "readers" and rest.strip():
        listed = Scope.parse(text).readers
        unknown = [user_id for user_id in listed if user_id not in corpus.users]
        if unknown:
            raise InputError(f"panel {text!r}: no reader {', '.join(unknown[:5])} in corpus {corpus.name!r}")
        ids = list(listed)
        description = f"{len(ids)} listed readers of {corpus.name}"
    else:
        raise InputError(
            f"unknown panel {text!r}; use personas, sample:N, segment:<expr> (e.g. segment:lang=zh) or readers:ID,..."
        )
    if not ids:
        raise InputError(f"panel {text!r} has no readers in corpus {corpus.name!r}")
    if len(ids) > MAX_PANEL:
        raise InputError(f"panel {text!r} has {len(ids)} readers; the limit is {MAX_PANEL} (use sample:N)")
    return Panel(spec=text, corpus=corpus.name, user_ids=tuple(ids), description=description, seed=seed)


def segment_members(expr: str, recommender: Recommender, users: Sequence[str]) -> list[str]:
    """Reader ids (sorted) that the rules' `Scope` for `segment:<expr>` matches.

    Membership needs only what a scope reads (tags, the set of categories read, the history's language),
    so each reader is matched on a light profile of its history's categories instead of a full profile
    (clustering every reader of a 50k-reader corpus would take minutes); the set of categories is the one
    `build_profile` would give, as both count the history items the corpus and the index hold.
    """
    scope = Scope.parse(f"segment:{expr}")
    corpus, index = recommender.corpus, recommender.index
    out = []
    for user_id in users:
        user = corpus.users[user_id]
        reads = [e.news_id for e in user.history if e.news_id in corpus.news and index.has(e.news_id)]
        categories: dict[str, float] = {}
        for news_id in reads:
            category = corpus.news[news_id].category or "uncategorised"
            categories[category] = categories.get(category, 0.0) + 1.0
        light = UserProfile(user_id=user_id, categories=categories, read_ids={e.news_id for e in user.history})
        if scope.matches(reader_from(user, light, corpus.news)):
            out.append(user_id)
    return out


def panel_readers(recommender: Recommender, user_ids: Sequence[str]) -> dict[str, Reader]:
    """The rules' `Reader` of each id (tags, categories read, language, stories read)."""
    corpus = recommender.corpus
    return {
        user_id: reader_from(corpus.users.get(user_id), recommender.profile(user_id), corpus.news)
        for user_id in user_ids
    }


# --- feeds ---------------------------------------------------------------------------------------------------


def panel_feeds(
    recommender: Recommender,
    panel: Panel,
    *,
    ruleset: RuleSet | None = None,
    stage: Stage = "rerank",
    k: int = 10,
    depth: int = 50,
    now: datetime | None = None,
    explain_cards: bool = True,
    cost: PanelCost | None = None,
    ranked: Mapping[str, list[Recommendation]] | None = None,
) -> dict[str, EditedFeed]:
    """Every panel reader's For-you feed (top k), as `recommend` makes it, with `ruleset` applied when given.

    `stage` "rerank" is the final feed; "retrieval" the first stage's order (the side-by-side's left list).
    `depth` cards per reader are ranked, so rules can backfill blocks and swap quota stories in.
    `now` is the time rule validity windows are checked against (default: the clock).
    `explain_cards` False skips the per-card reason sentence (audits do not read it).
    `ranked` reuses deep lists from `ranked_lists` (same stage and depth), e.g. to apply two rule sets.
    """
    if stage not in ("rerank", "retrieval"):
        raise InputError(f"stage must be rerank or retrieval, not {stage!r}")
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    cost = cost if cost is not None else PanelCost()
    cost.readers = len(panel)
    if ranked is None:  # without rules the top k is all that is shown: no deeper cards to make
        deep = max(depth, k) if ruleset is not None else k
        ranked = ranked_lists(recommender, panel.user_ids, stage=stage, depth=deep, cost=cost)
    if explain_cards and ruleset is not None:  # the rules prefix what they did to the card's reason line
        tick = cost.start()
        ranked = {user_id: _explained(recommender, recommender.profile(user_id), ranked[user_id]) for user_id in ranked}
        cost.add("explain", tick)
    tick = cost.start()
    if ruleset is None:
        feeds = {user_id: EditedFeed(items=_renumbered(ranked[user_id][:k])) for user_id in panel.user_ids}
    else:
        from newsrec.editorial.store import RuleStore, labelled_news

        now = now or datetime.now(timezone.utc)
        corpus = recommender.corpus
        overlay = RuleStore(recommender.settings.home, corpus.name).labels()
        news = labelled_news(corpus.news, overlay) if overlay else corpus.news
        readers = panel_readers(recommender, panel.user_ids)
        has_reach = any(rule.kind == "reach" for rule in ruleset.rules)
        plan = plan_reach(ruleset, ranked, readers, k=k, now=now) if has_reach else None

        def edit(user_id: str, cards: Sequence[Recommendation]) -> EditedFeed:
            return apply_rules(
                ruleset,
                cards,
                reader=readers[user_id],
                news=news,
                k=k,
                now=now,
                reach_plan=plan,
                fresh_now=recommender.now,
            )

        feeds = {user_id: edit(user_id, ranked[user_id]) for user_id in panel.user_ids}
        # As the feed glue does (editorial/feed.py): when blocks and quotas leave a feed short, rank the
        # reader's whole candidate pool and apply the rules again.
        candidates = recommender.settings.candidates
        deep = max(depth, k)
        short = [u for u in panel.user_ids if len(feeds[u].items) < k and len(ranked[u]) == deep < candidates]
        if short:
            cost.add("rules", tick)
            deeper = ranked_lists(recommender, short, stage=stage, depth=candidates, cost=cost)
            tick = cost.start()
            for user_id in short:
                cards = deeper[user_id]
                if explain_cards:
                    cards = _explained(recommender, recommender.profile(user_id), cards)
                feeds[user_id] = edit(user_id, cards)
    cost.add("rules", tick)
    if explain_cards and ruleset is None:
        tick = cost.start()
        for user_id, feed in feeds.items():
            feed.items = _explained(recommender, recommender.profile(user_id), feed.items)
        cost.add("explain", tick)
    return feeds


def ranked_lists(
    recommender: Recommender,
    user_ids: Sequence[str],
    *,
    stage: Stage = "rerank",
    depth: int = 50,
    cost: PanelCost | None = None,
) -> dict[str, list[Recommendation]]:
    """Each reader's deep ranked list (up to `depth` cards, one slot per story), without reasons or rules."""
    cost = cost if cost is not None else PanelCost()
    settings = recommender.settings
    n = max(settings.candidates, depth)
    if n != settings.candidates:
        log.info("panel depth %d exceeds the first stage's %d candidates: pools of %d", depth, settings.candidates, n)
    tick = cost.start()
    profiles = {user_id: recommender.profile(user_id) for user_id in user_ids}
    cost.add("profiles", tick)
    tick = cost.start()
    pools = batched_pools(recommender, profiles, n)
    cost.add("retrieve", tick)
    tick = cost.start()
    second = _panel_stage(recommender)
    out: dict[str, list[Recommendation]] = {}
    for user_id in user_ids:
        pool = pools[user_id]
        if stage == "retrieval":
            groups = recommender._one_slot_per_story(range(len(pool)), pool)[:depth]
            out[user_id] = [
                _card(pool, group, rank, pool[group[0]].retrieval_score, {"retrieval": pool[group[0]].retrieval_score})
                for rank, group in enumerate(groups, 1)
            ]
            continue
        scores, parts = _second_stage(recommender, second, profiles[user_id], pool)
        if recommender.settings.freshness_half_life_days <= 0:  # as Recommender.recommend: age does not count
            scores, parts = without_parts(scores, parts, FRESHNESS_PARTS)
        order = recommender._post_rank(scores, pool, len(pool), None, None, None)
        groups = recommender._one_slot_per_story(order, pool)
        history_vectors, _ = recommender._history_lookup(profiles[user_id])
        # as Recommender.recommend(k=depth), which EditorialFeeds asks for: a new subject fills a few slots (the
        # first k of any page are the same for any depth); the kept cards of a capped subject carry a "variety"
        # reason, which `_explained` keeps
        groups, varied = recommender._cap_new_subjects(groups, pool, profiles[user_id], depth, history_vectors)
        out[user_id] = [
            _card(pool, group, rank, scores[group[0]], parts[group[0]], variety=group[0] in varied)
            for rank, group in enumerate(groups[:depth], 1)
        ]
    cost.add("rerank" if stage == "rerank" else "present", tick)
    return out


def batched_pools(recommender: Recommender, profiles: Mapping[str, UserProfile], n: int) -> dict[str, list[Candidate]]:
    """The first stage of `Recommender._retrieve` (For-you, no filters) for many readers at once."""
    index, corpus, recall = recommender.index, recommender.corpus, recommender.recall
    ids = index.all_ids()
    matrix = index.matrix()  # (N, D) read-only, rows in `ids` order
    rows = {news_id: row for row, news_id in enumerate(ids)}
    in_corpus = np.array([news_id in corpus.news for news_id in ids], dtype=bool)
    page = int(getattr(index, "page_size", 0) or len(ids))  # Chroma answers at most this many neighbours
    bonus = recall.bonus(ids)  # (N,) the trending term of every story, once: it does not depend on the reader
    pools: dict[str, list[Candidate]] = {}
    cold: dict[frozenset[str], list[tuple[str, float]]] = {}
    with_interests = [user_id for user_id, profile in profiles.items() if profile.interests]
    for user_id, profile in profiles.items():
        if not profile.interests:  # the trending-then-newest list: the same for every reader with the same reads
            key = frozenset(profile.read_ids) | frozenset(profile.disliked_ids)
            if key not in cold:
                cold[key] = [(c.item.id, c.retrieval_score, c.source) for c in _single_pool(recommender, profile, n)]
            pools[user_id] = _candidates(recommender, cold[key], matrix, rows)
    for start in range(0, len(with_interests), READER_BLOCK):
        block = with_interests[start : start + READER_BLOCK]
        centres = np.concatenate([np.stack([i.vector for i in profiles[u].interests]) for u in block])  # (M, D)
        # float32 like the index; einsum would avoid BLAS threading but is 10x slower for this (M x N) product
        similarity = np.asarray(centres, dtype=np.float32) @ matrix.T  # (M, N) cosines: unit vectors
        offset = 0
        for user_id in block:
            profile = profiles[user_id]
            count = len(profile.interests)
            block_rows = similarity[offset : offset + count]
            ranked = _fused(recall, profile, block_rows, ids, rows, in_corpus, bonus, n, page)
            offset += count
            pools[user_id] = _candidates(recommender, ranked, matrix, rows)
    return {user_id: pools[user_id] for user_id in profiles}


def _fused(
    recall: Any,
    profile: UserProfile,
    similarity: np.ndarray,
    ids: Sequence[str],
    rows: Mapping[str, int],
    in_corpus: np.ndarray,
    bonus: np.ndarray,
    n: int,
    page: int,
) -> list[tuple[str, float, str]]:
    """One reader's first stage from its (I, N) interest-by-story cosines, as `_retrieve` scores it."""
    excluded = set(profile.disliked_ids) | profile.read_ids
    fetch = n + len(excluded)
    best: dict[str, float] = {}
    for row, interest in zip(similarity, profile.interests, strict=True):
        share = min(max(10, math.ceil(fetch * min(1.0, 1.5 * interest.weight))), page, len(ids))
        top = np.argpartition(-row, share - 1)[:share] if share < len(row) else np.arange(len(row))
        top = top[np.argsort(-row[top], kind="stable")]  # the nearest first, as the index answers
        for column in top:
            news_id = ids[column]
            if news_id in excluded or not in_corpus[column]:
                continue
            value = float(row[column])
            if value > best.get(news_id, -1.0):
                best[news_id] = value

    def usable(news_id: str) -> bool:
        return news_id not in best and news_id in rows and news_id not in excluded and in_corpus[rows[news_id]]

    trending = recall.trending(n, usable)
    if trending:
        cosines = similarity[:, [rows[news_id] for news_id in trending]].max(axis=0)
        best.update(zip(trending, cosines.astype(np.float64).tolist(), strict=True))
    chosen = list(best)
    # recall.score(ids, cosines) is cosine + recall.bonus(ids); the bonus is precomputed for every story
    fused = np.array([best[i] for i in chosen], dtype=np.float64) + bonus[[rows[i] for i in chosen]]
    trend = set(trending)  # the recall source, which the cards name ("Trending with readers now")
    ranked = sorted(zip(chosen, fused.tolist(), strict=True), key=lambda kv: -kv[1])[:n]
    return [(news_id, score, "trending" if news_id in trend else "interest") for news_id, score in ranked]


def _single_pool(recommender: Recommender, profile: UserProfile, n: int) -> list[Candidate]:
    from newsrec.pipeline import Filters

    pool, _ = recommender._retrieve("", None, profile, n, Filters())
    return pool


def _candidates(
    recommender: Recommender, ranked: Sequence[tuple[str, float, str]], matrix: np.ndarray, rows: Mapping[str, int]
) -> list[Candidate]:
    """Candidates from (news_id, first-stage score, recall source) triples, ranked."""
    news = recommender.corpus.news
    return [
        Candidate(
            item=news[news_id],
            retrieval_score=float(score),
            retrieval_rank=rank,
            embedding=matrix[rows[news_id]],
            source=source,
        )
        for rank, (news_id, score, source) in enumerate(ranked, 1)
        if news_id in rows
    ]


class _CatalogPrior:
    """The recommender's CTR prior with every story's log-odds and shows computed once, for a panel.

    `ExposurePopularity.logit` smooths each id's counts in a Python loop; a panel asks it for the same
    stories thousands of times. Answers equal the prior's own (it computes them); a `leave_out` (training
    only) goes to the prior itself.
    """

    def __init__(self, prior: Any, ids: Sequence[str]):
        self.prior = prior
        self.rows = {news_id: row for row, news_id in enumerate(ids)}
        self._logit = prior.logit(list(ids))
        self._shows = prior.shows(list(ids))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.prior, name)

    def _at(self, news_ids: Sequence[str]) -> np.ndarray | None:
        rows = [self.rows.get(news_id, -1) for news_id in news_ids]
        return None if -1 in rows else np.array(rows, dtype=np.int64)

    def logit(self, news_ids: Sequence[str], leave_out: Any = None) -> np.ndarray:
        rows = self._at(news_ids) if leave_out is None else None
        return self.prior.logit(news_ids, leave_out) if rows is None else self._logit[rows]

    def shows(self, news_ids: Sequence[str]) -> np.ndarray:
        rows = self._at(news_ids)
        return self.prior.shows(news_ids) if rows is None else self._shows[rows]


def _panel_stage(recommender: Recommender) -> Any:
    """The recommender's second stage, or a shallow copy of it reading a `_CatalogPrior` (same scores, faster).

    Copies, never edits: the recommender may be serving other requests meanwhile.
    """
    stage = recommender.stage
    prior = getattr(stage, "prior", None)
    if prior is None or not isinstance(stage, BlendStage | LearnedStage):
        return stage
    fast = _CatalogPrior(prior, recommender.index.all_ids())
    stage = copy.copy(stage)
    stage.prior = fast
    if isinstance(stage, LearnedStage):
        stage.builder = copy.copy(stage.builder)
        stage.builder.prior = fast
    return stage


def _second_stage(
    recommender: Recommender, stage: Any, profile: UserProfile, pool: list[Candidate]
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """The recommender's second stage over one reader's pool: (scores, contributions).

    The lite reranker scores a reader's whole pool in one vectorised call (its parts are matrix products
    over the candidates); its scores depend on the reader's profile, so there is no cross-reader matrix to
    share. Lite scores are computed directly rather than through the score cache: they are deterministic,
    and hashing and looking up 100 cache keys per reader costs more than scoring them. Under the default
    blend the stage recomputes the reranker's parts itself and never reads the model scores; other
    rerankers (Qwen3-VL, remote) go through the recommender's cached path.
    """
    if not pool:
        return np.zeros(0), []
    request = RerankRequest(
        query="", profile=profile, instruction=recommender.settings.instruction, now=recommender.now
    )
    lite = recommender.reranker.name.startswith("lite")
    if not lite:
        scores, _, parts, _ = recommender._rerank(request, pool)
        return scores, parts
    if _reads_model_scores(recommender):
        model_scores = np.asarray(recommender.reranker.score(request, pool), dtype=np.float64)
    else:
        model_scores = np.zeros(len(pool))  # the stage never reads them
    return stage.score(request, pool, model_scores)


def _reads_model_scores(recommender: Recommender) -> bool:
    """Whether the second stage uses the reranker's scores it is handed.

    The default blend rescores a reranker that has named components (lite) itself; a learned model uses
    them only when the reranker's score is one of its features.
    """
    stage = recommender.stage
    if isinstance(stage, BlendStage):
        return not hasattr(recommender.reranker, "score_components")
    if isinstance(stage, LearnedStage):
        return MODEL_FEATURE in stage.saved.ranker.features
    return True


def _card(
    pool: list[Candidate],
    group: list[int],
    rank: int,
    score: float,
    contributions: Mapping[str, float],
    variety: bool = False,
) -> Recommendation:
    candidate = pool[group[0]]
    return Recommendation(
        item=candidate.item,
        score=float(score),
        rank=rank,
        retrieval_score=candidate.retrieval_score,
        retrieval_rank=candidate.retrieval_rank,
        contributions=dict(contributions),
        duplicate_ids=[pool[i].item.id for i in group[1:]],
        reasons=[Reason("variety", 0.0, candidate.item.subcategory)] if variety else [],
    )


def _explained(recommender: Recommender, profile: UserProfile, cards: list[Recommendation]) -> list[Recommendation]:
    """The reason sentence and structured reasons `recommend` puts on each card."""
    if not cards:
        return cards
    history_vectors, history_titles = recommender._history_lookup(profile)
    vectors = recommender.index.embeddings([card.item.id for card in cards])
    out = []
    for card, vector in zip(cards, vectors, strict=True):
        if card.explanation:  # already explained (e.g. by the rules)
            out.append(card)
            continue
        variety = any(reason.kind == "variety" for reason in card.reasons)
        why = explain(
            card.item, card.contributions, vector, profile, history_vectors, history_titles, "", variety=variety
        )
        out.append(replace(card, explanation=why.line, matched_history=why.matched, reasons=why.reasons))
    return out


def _renumbered(cards: Sequence[Recommendation]) -> list[Recommendation]:
    return [replace(card, rank=rank) for rank, card in enumerate(cards, 1)]
