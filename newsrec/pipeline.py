"""The recommender: candidates (Chroma + BM25 recall) -> scorer (reranker) -> ranker (post-ranking controls).

`recommend()` returns both the retrieval-only list and the reranked list, so every caller (CLI, app,
evaluation) can show what the second stage changed and why.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

from newsrec.cache import ScoreCache, score_key
from newsrec.config import Settings
from newsrec.data.corpus import Corpus, format_time, load_corpus
from newsrec.dedupe import same_story_groups
from newsrec.embedders import Embedder, get_embedder
from newsrec.errors import InputError
from newsrec.explain import explain, resembles_reading
from newsrec.follow import follows_store
from newsrec.index import NewsIndex
from newsrec.learning.stage import SecondStage, build_stage
from newsrec.lexical import LexicalIndex
from newsrec.profiles import build_profile, idf_table, subcategory_key
from newsrec.ranking import cap_categories, cap_new_subjects, freshness_decay, mmr_order
from newsrec.recall import ForYouRecall
from newsrec.relevance import matches, query_relevance, query_scale
from newsrec.rerankers import Reranker, get_reranker
from newsrec.types import (
    Candidate,
    HistoryEntry,
    Impression,
    NewsItem,
    Recommendation,
    RecommendResult,
    RerankRequest,
    UserProfile,
)

MAX_QUERY_CHARS = 2000
NO_MATCH = (0.0, 0.0, False, False, False, False)  # (coverage, held, covers, full, headline, known): no term
FRESHNESS_PARTS = ("fresh",)  # score parts that exist only while the freshness control is on
GUEST = "guest"  # a reader with no history, available in every corpus (e.g. one ingested without users)


@dataclass
class Filters:
    categories: list[str] = field(default_factory=list)  # empty = all
    languages: list[str] = field(default_factory=list)
    has_image: bool | None = None

    def where(self) -> dict | None:
        """The same filter as a Chroma metadata `where` clause."""
        clauses = []
        if self.categories:
            clauses.append({"category": {"$in": list(self.categories)}})
        if self.languages:
            clauses.append({"language": {"$in": list(self.languages)}})
        if self.has_image is not None:
            clauses.append({"has_image": self.has_image})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def accepts(self, item: NewsItem) -> bool:
        return (
            (not self.categories or item.category in self.categories)
            and (not self.languages or item.language in self.languages)
            and (self.has_image is None or bool(item.images) == self.has_image)
        )


class Recommender:
    def __init__(
        self,
        settings: Settings,
        corpus: Corpus,
        embedder: Embedder,
        reranker: Reranker,
        index: NewsIndex,
        cache: ScoreCache | None = None,
        lexical: LexicalIndex | None = None,
    ):
        self.settings, self.corpus, self.embedder, self.reranker, self.index = (
            settings,
            corpus,
            embedder,
            reranker,
            index,
        )
        self.cache = cache if cache is not None else ScoreCache(settings.cache_dir / "rerank_scores.sqlite")
        self.lexical = lexical or LexicalIndex.build(list(corpus.news.values()))
        if self.lexical.translator is None:  # a bilingual corpus: query words reach the other language
            self.lexical.enable_translation(embedder, list(corpus.news.values()), index)
        self.idf = idf_table(list(corpus.news.values()))
        self.now = corpus.latest  # the corpus's own "now", so an old corpus still has fresh items
        self._profiles: dict[str, UserProfile] = {}
        self._newest: tuple[Corpus, list[str]] | None = None  # the corpus's ids, newest first (cold start)
        # second stage: the corpus's learned model, else the reranker (+ a CTR prior when it has impressions)
        self.stage: SecondStage = build_stage(
            settings.home, corpus, reranker, embedder, settings.prior_weight, self.lexical
        )
        self.recall = ForYouRecall(self.stage.prior, corpus.news, settings.trend_weight)  # + trending, if a log

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        reranker: Reranker | None = None,
        show_progress: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
        warm_up: bool = True,
    ) -> Recommender:
        """Load the corpus and models and bring the index up to date (the first run embeds everything)."""
        settings = settings or Settings.from_env()
        corpus = load_corpus(settings)
        if embedder is None:
            embedder = get_embedder(
                settings.resolved_embedder, **model_options(settings, settings.embedder_model, corpus)
            )
        index = NewsIndex(settings, corpus.name, embedder)
        index.sync(corpus, progress=show_progress, on_progress=on_progress)
        lexical = LexicalIndex.build(list(corpus.news.values()))
        if reranker is None:
            options = model_options(settings, settings.reranker_model, corpus)
            reranker = get_reranker(settings.resolved_reranker, embedder=embedder, lexical=lexical, **options)
        if hasattr(reranker, "prepare_documents"):  # e.g. Qwen3-VL: photo features computed at index time
            reranker.prepare_documents(list(corpus.news.values()))
        recommender = cls(settings, corpus, embedder, reranker, index, lexical=lexical)
        if warm_up:  # load lazy model weights now, not inside the first request (a one-shot command skips it)
            embedder.embed_queries(["warm-up"])
        return recommender

    @property
    def mode(self) -> str:
        return "lite" if self.reranker.name.startswith("lite") and self.embedder.name.startswith("lite") else "qwen3-vl"

    # --- profiles ----------------------------------------------------------------------------

    # A profile reads the store (a reader's history vectors) outside `recommend` too: the dashboard's charts and the
    # editorial feeds ask for it. It follows the store the same way, or another process's rebuild fails it.
    @follows_store
    def profile(self, user_id: str) -> UserProfile:
        if user_id not in self._profiles:
            guest = user_id == GUEST and user_id not in self.corpus.users
            history = [] if guest else self.corpus.user(user_id).history
            self._profiles[user_id] = self._build_profile(user_id, history)
        return self._profiles[user_id]

    @follows_store
    def profile_from_history(self, history_ids: Sequence[str], user_id: str = "") -> UserProfile:
        return self._build_profile(user_id, [HistoryEntry(news_id=news_id) for news_id in history_ids])

    def _build_profile(self, user_id: str, history: Sequence[HistoryEntry]) -> UserProfile:
        recent = list(history)[-max(1, self.settings.max_history) :]  # the last N reads (older corpora: uncapped)
        known = [entry for entry in recent if entry.news_id in self.corpus.news and self.index.has(entry.news_id)]
        embeddings = self.index.embeddings([entry.news_id for entry in known]) if known else np.zeros((0, 1))
        profile = build_profile(user_id, known, self.corpus.news, embeddings, self.idf, self.now)
        profile.read_ids |= {entry.news_id for entry in history}
        return profile

    # --- recommend ---------------------------------------------------------------------------

    @follows_store  # another process's ingest or index rebuild is picked up here (newsrec/follow.py)
    def recommend(
        self,
        user_id: str,
        query: str | None = None,
        k: int | None = None,
        candidates: int | None = None,
        filters: Filters | None = None,
        profile: UserProfile | None = None,
        instruction: str | None = None,
        mmr_lambda: float | None = None,
        half_life_days: float | None = None,
        category_cap: int | None = None,
    ) -> RecommendResult:
        started = time.perf_counter()
        query = _clean_query(query)
        k = _positive(self.settings.k if k is None else k, "k")
        n_candidates = max(_positive(self.settings.candidates if candidates is None else candidates, "candidates"), k)
        profile = profile or self.profile(user_id)
        filters = filters or Filters()

        with self.lexical.request_scope():  # the corpus is scored against the query once, not once per stage
            return self._recommend(
                user_id,
                query,
                k,
                n_candidates,
                filters,
                profile,
                instruction,
                mmr_lambda,
                half_life_days,
                category_cap,
                started,
            )

    def _recommend(
        self,
        user_id: str,
        query: str,
        k: int,
        n_candidates: int,
        filters: Filters,
        profile: UserProfile,
        instruction: str | None,
        mmr_lambda: float | None,
        half_life_days: float | None,
        category_cap: int | None,
        started: float,
    ) -> RecommendResult:
        timings: dict[str, float] = {}
        tick = time.perf_counter()
        query_vector = self.embedder.embed_queries([query])[0] if query else None
        pool, query_matched = self._retrieve(query, query_vector, profile, n_candidates, filters)
        asked, notice, nearest = query, "", []
        if not query_matched and pool:  # no exact match, but a near topic: show it as such, ordered for the reader
            nearest = [c.item.id for c in pool]
            notice = f"No exact match for “{query}”; nearest: {pool[0].item.title}."
            query, query_vector = "", None
        elif not query_matched:  # an honest empty state: say so, and show the reader's For-you feed instead
            notice = f"Nothing matches “{query}”; showing your For-you feed instead."
            query, query_vector = "", None
            pool, _ = self._retrieve(query, query_vector, profile, n_candidates, filters)
        timings["retrieve"] = _ms(tick)

        tick = time.perf_counter()
        request = RerankRequest(
            query=query,
            profile=profile,
            instruction=instruction or self.settings.instruction,
            now=self.now,
            query_vector=query_vector,
        )
        scores, hits, parts, model_notice = self._rerank(request, pool)
        # A story marked "not interested" scored with the rest: under "Apple launch event" the disliked
        # MacBook story is what says the search means Apple the company; without it the fruit stories rose.
        # Hidden with it: its other-language copy, which the page would otherwise show in the freed slot.
        disliked = set(profile.disliked_ids)
        hidden = {
            i
            for group in self._one_slot_per_story(range(len(pool)), pool)
            if any(pool[j].item.id in disliked for j in group)
            for i in group
        }
        shown = [i for i in range(len(pool)) if i not in hidden]
        if len(shown) < len(pool):
            pool, scores, parts = [pool[i] for i in shown], scores[shown], [parts[i] for i in shown]
        half_life = self.settings.freshness_half_life_days if half_life_days is None else half_life_days
        if half_life <= 0:  # freshness is off: no freshness part in any score, so no card says "recent"
            scores, parts = without_parts(scores, parts, FRESHNESS_PARTS)
        notice = " ".join(part for part in (notice, model_notice) if part)
        timings["rerank"] = _ms(tick)

        tick = time.perf_counter()
        order = self._post_rank(scores, pool, len(pool), mmr_lambda, half_life_days, category_cap)
        history_vectors, history_titles = self._history_lookup(profile)

        # The retrieval column shows one slot per story, so a story's retrieval rank is its slot there
        # (not its position in the pool, where the other language of a merged pair also takes a place).
        stories = self._one_slot_per_story(range(len(pool)), pool)
        slot = {i: rank for rank, group in enumerate(stories, 1) for i in group}

        def make(
            group: list[int], rank: int, score: float, contributions: dict[str, float], feed: bool = False
        ) -> Recommendation:
            index = group[0]
            candidate = pool[index]
            why = explain(
                candidate.item,
                parts[index],
                candidate.embedding,
                profile,
                history_vectors,
                history_titles,
                query,
                candidate.source,
                variety=feed and index in varied,
                query_words=self.lexical.matched_words(query, candidate.item) if query else None,
            )
            return Recommendation(
                item=candidate.item,
                score=float(score),
                rank=rank,
                retrieval_score=candidate.retrieval_score,
                retrieval_rank=min(slot[i] for i in group),
                explanation=why.line,
                matched_history=why.matched,
                contributions=contributions,
                reasons=why.reasons,
                duplicate_ids=[pool[i].item.id for i in group[1:]],
            )

        by_rerank = self._one_slot_per_story(order, pool)
        varied: set[int] = set()
        if not query:  # For-you: a subject the reader never read fills a few slots, not the page
            by_rerank, varied = self._cap_new_subjects(by_rerank, pool, profile, k, history_vectors)
        by_rerank = by_rerank[:k]
        reranked = [make(g, rank, scores[g[0]], parts[g[0]], feed=True) for rank, g in enumerate(by_rerank, 1)]
        by_retrieval = stories[:k]
        retrieval = [
            make(g, rank, pool[g[0]].retrieval_score, {"retrieval": pool[g[0]].retrieval_score})
            for rank, g in enumerate(by_retrieval, 1)
        ]
        timings["present"] = _ms(tick)
        timings["total"] = _ms(started)
        return RecommendResult(
            mode=self.mode,
            user_id=user_id,
            query=asked,
            retrieval=retrieval,
            reranked=reranked,
            timings_ms=timings,
            reranker=self.stage.name,
            embedder=self.embedder.name,
            candidates=len(pool),
            cache_hits=hits,
            cache_misses=len(pool) - hits,
            query_matched=query_matched,
            notice=notice,
            nearest=nearest,
        )

    def _retrieve(
        self, query: str, query_vector: np.ndarray | None, profile: UserProfile, n: int, filters: Filters
    ) -> tuple[list[Candidate], bool]:
        """First stage: up to n candidates that pass the filters, best first; and whether any matched the query.

        A search covers read stories too (a reader looks up the price story he read last week); the For-you
        feed shows unread ones only. Stories marked "not interested" stay in a search's pool, where they
        still tell which sense of the query the reader searched for (`recommend` drops them after scoring);
        they never come back on a page.
        """
        excluded = set() if query else set(profile.disliked_ids) | profile.read_ids
        fetch = n + len(excluded) + len(profile.disliked_ids)

        def accepted(news_id: str) -> bool:
            return (
                news_id not in excluded and news_id in self.corpus.news and filters.accepts(self.corpus.news[news_id])
            )

        def usable(hits: list[tuple[str, float]]) -> list[tuple[str, float]]:
            return [(i, s) for i, s in hits if accepted(i)]

        matched = True
        sources: dict[str, str] = {}  # For-you: which recall source found each item
        if query:
            dense = usable(self.index.search(query_vector, fetch, where=filters.where()))
            scored = self.lexical.score(query)
            hits = np.flatnonzero(scored.coverage > 0)
            hits = hits[np.lexsort((hits, -scored.coverage[hits], -scored.held[hits]))]  # covering items first
            covers, full = scored.covers, scored.full
            headline = scored.headline if scored.headline is not None else np.ones(len(covers), dtype=bool)
            known = scored.known if scored.known is not None else np.zeros(len(covers), dtype=bool)
            lexical = {
                news_id: (
                    float(scored.coverage[i]),
                    float(scored.held[i]),
                    bool(covers[i]),
                    bool(full[i]),
                    bool(headline[i]),
                    bool(known[i]),
                )
                # the first `fetch` usable hits, taken lazily: a common word's hits are a share of the whole corpus
                for news_id, i in islice(
                    ((self.lexical.ids[i], i) for i in hits if accepted(self.lexical.ids[i])), fetch
                )
            }
            ranked, matched = self._fuse(query_vector, dense, lexical, n, profile)
        elif profile.interests:  # interest neighbours plus trending items (recall.py), by one fused score
            best: dict[str, float] = {}
            for interest in profile.interests:
                share = max(10, math.ceil(fetch * min(1.0, 1.5 * interest.weight)))
                for news_id, similarity in usable(self.index.search(interest.vector, share, where=filters.where())):
                    best[news_id] = max(best.get(news_id, -1.0), similarity)
            trending = self.recall.trending(n, lambda i: i not in best and self.index.has(i) and usable([(i, 0)]))
            sources = dict.fromkeys(best, "interest") | dict.fromkeys(trending, "trending")
            if trending:
                centres = np.stack([interest.vector for interest in profile.interests])  # (I, D)
                cosines = (self.index.embeddings(trending) @ centres.T).max(axis=1)
                best.update(zip(trending, cosines.tolist(), strict=True))
            ids = list(best)
            fused = self.recall.score(ids, np.array([best[i] for i in ids]))
            ranked = sorted(zip(ids, fused.tolist(), strict=True), key=lambda kv: -kv[1])[:n]
        else:  # no query and no history: the trending stories (with a log), then the newest
            newest = list(islice((news_id for news_id in self._newest_ids() if accepted(news_id)), n))
            ranked = self.recall.cold_start(newest, n, accepted)
            popular = set(self.recall.trending(n, lambda i: bool(usable([(i, 0)])), share=1.0))
            sources = {news_id: "trending" if news_id in popular else "newest" for news_id, _ in ranked}
        ranked = [(news_id, score) for news_id, score in ranked if self.index.has(news_id)]
        embeddings = self.index.embeddings([news_id for news_id, _ in ranked]) if ranked else []
        pool = [
            Candidate(
                item=self.corpus.news[news_id],
                retrieval_score=float(score),
                retrieval_rank=rank,
                embedding=vector,
                source=sources.get(news_id, ""),
            )
            for rank, ((news_id, score), vector) in enumerate(zip(ranked, embeddings, strict=True), 1)
        ]
        return pool, matched

    def _newest_ids(self) -> list[str]:
        """Every story id, newest first (ties in corpus order): sorted once per corpus, not per cold-start request."""
        if self._newest is None or self._newest[0] is not self.corpus:
            items = sorted(
                self.corpus.news.values(), key=lambda item: format_time(item.published_at) or "", reverse=True
            )
            self._newest = (self.corpus, [item.id for item in items])
        return self._newest[1]

    def _fuse(
        self,
        query_vector: np.ndarray,
        dense: list[tuple[str, float]],
        lexical: dict[str, tuple[float, float, bool, bool, bool, bool]],
        n: int,
        profile: UserProfile,
    ) -> tuple[list[tuple[str, float]], bool]:
        """Dense and lexical hits scored by query relevance (newsrec/relevance.py), and whether anything matched.

        `lexical` maps news ids to (coverage, held share, covers, full, headline, known). When the query admits
        nothing, the result holds the near topic instead, if any: items at the embedder's match floor, by cosine
        (`matched` False).
        """
        cosines = dict(dense)
        only_lexical = [news_id for news_id in lexical if news_id not in cosines and self.index.has(news_id)]
        if only_lexical:
            vectors = self.index.embeddings(only_lexical)  # (M, D)
            cosines.update(zip(only_lexical, (vectors @ query_vector).tolist(), strict=True))
        ids = list(cosines)
        cos = np.array([cosines[i] for i in ids])
        rows = [lexical.get(i, NO_MATCH) for i in ids]
        coverage, held, covers, full, headline, known = (np.array([row[c] for row in rows]) for c in range(6))
        categories = [self.corpus.news[i].category for i in ids]
        familiar = np.array([subcategory_key(self.corpus.news[i]) in profile.subcategories for i in ids], dtype=bool)
        scores = query_relevance(
            cos,
            coverage,
            self.embedder,
            categories,
            held,
            covers.astype(bool),
            full.astype(bool),
            familiar,
            headline.astype(bool),
            known.astype(bool),
        )
        if not matches(scores):
            near = query_scale(self.embedder)(cos)
            order = [i for i in np.lexsort((np.arange(len(ids)), -cos)) if near[i] > 0][:n]
            return [(ids[i], float(cos[i])) for i in order], False
        # Only what matches: a short honest list beats cards that claim a match they do not have.
        order = [i for i in np.lexsort((-cos, -scores)) if scores[i] > 0][:n]
        return [(ids[i], float(scores[i])) for i in order], True

    def _one_slot_per_story(self, order: Sequence[int], pool: list[Candidate]) -> list[list[int]]:
        """Pool indices in `order`, grouped so the same story in other languages shares its first slot."""
        order = list(order)
        if not order:
            return []
        vectors = np.stack([pool[i].embedding for i in order])  # (N, D)
        groups = same_story_groups([pool[i].item for i in order], vectors, self.embedder)
        return [[order[m] for m in group] for group in groups]

    def _rerank(
        self, request: RerankRequest, pool: list[Candidate]
    ) -> tuple[np.ndarray, int, list[dict[str, float]], str]:
        """Second stage: the reranker through the score cache, then the stage's final score and its parts.

        Only the reranker's scores are cached (keyed by reranker, instruction, query, profile, item, time);
        the learned model or blend on top is recomputed per request, so a new model never meets stale scores.
        Also returns the reranker's notice: a remote reranker that fell back to lite says so, and such
        scores are not cached under its name (`cacheable` False).
        """
        if not pool:
            return np.zeros(0), 0, [], ""
        profile_key = request.profile.fingerprint() if request.profile else ""
        now = format_time(request.now) or ""
        keys = [
            score_key(self.reranker.name, request.instruction, request.query, profile_key, c.item.content_hash(), now)
            for c in pool
        ]
        cached = self.cache.get_many(keys)
        missing = [i for i, key in enumerate(keys) if key not in cached]
        notice = ""
        if missing:
            fresh = self.reranker.score(request, [pool[i] for i in missing])
            notice = getattr(fresh, "notice", "")
            if getattr(fresh, "cacheable", True):
                self.cache.put_many((keys[i], score) for i, score in zip(missing, fresh, strict=True))
            cached.update({keys[i]: score for i, score in zip(missing, fresh, strict=True)})
        model_scores = np.array([cached[key] for key in keys], dtype=np.float64)
        scores, parts = self.stage.score(request, pool, model_scores)
        return scores, len(pool) - len(missing), parts, notice

    def _post_rank(
        self,
        scores: np.ndarray,
        pool: list[Candidate],
        k: int,
        mmr_lambda: float | None,
        half_life_days: float | None,
        category_cap: int | None,
    ) -> list[int]:
        items = [c.item for c in pool]
        half_life = self.settings.freshness_half_life_days if half_life_days is None else half_life_days
        lambda_ = self.settings.mmr_lambda if mmr_lambda is None else mmr_lambda
        cap = self.settings.category_cap if category_cap is None else category_cap
        adjusted = freshness_decay(scores, items, self.now, half_life)
        embeddings = np.stack([c.embedding for c in pool]) if pool else np.zeros((0, 1))
        order = mmr_order(adjusted, embeddings, lambda_, len(pool) if cap else k)
        return cap_categories(order, items, cap, k)

    def _cap_new_subjects(
        self,
        groups: list[list[int]],
        pool: list[Candidate],
        profile: UserProfile,
        k: int,
        history_vectors: dict[str, np.ndarray],
    ) -> tuple[list[list[int]], set[int]]:
        """For-you story groups with at most `Settings.new_subject_cap` cards per new subject in the first `k`
        (ranking.cap_new_subjects); and the pool indices of the kept cards whose subject had more held back."""
        subjects = [
            ""
            if resembles_reading(pool[g[0]].item, pool[g[0]].embedding, profile, history_vectors)
            else self._new_subject(pool[g[0]].item, profile)
            for g in groups[: 3 * k]  # enough to fill k slots; the rest keep their order
        ]
        subjects += [""] * (len(groups) - len(subjects))
        positions, held_back = cap_new_subjects(subjects, self.settings.new_subject_cap, k)
        varied = {g[0] for g, subject in zip(groups, subjects, strict=True) if subject and subject in held_back}
        return [groups[p] for p in positions], varied

    @staticmethod
    def _new_subject(item: NewsItem, profile: UserProfile) -> str:
        """The item's subject ("category/subcategory") if the reader reads its category but never that subject.

        The cap applies to cards unlike the reading only (`explain.resembles_reading`): a quake reader's
        rebuilding stories are like her reads even where she never opened that subcategory."""
        key = subcategory_key(item)
        new = item.subcategory and key not in profile.subcategories and item.category in profile.categories
        return key if new else ""

    def _history_lookup(self, profile: UserProfile) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """History vectors (already in the profile's interests) and titles, for explanations."""
        vectors: dict[str, np.ndarray] = {}
        for interest in profile.interests:
            if interest.members is not None:
                vectors.update(zip(interest.news_ids, interest.members, strict=True))
        return vectors, {news_id: self.corpus.news[news_id].title for news_id in vectors if news_id in self.corpus.news}

    # --- evaluation ----------------------------------------------------------------------------

    @follows_store
    def score_candidates(
        self,
        profile: UserProfile,
        news_ids: Sequence[str],
        query: str = "",
        stage: SecondStage | None = None,
        leave_out: Impression | None = None,
        recall: ForYouRecall | None = None,
    ) -> tuple[list[float], list[float]]:
        """(retrieval, second-stage) scores for a fixed candidate list, e.g. one logged impression.

        Retrieval scores are the first stage's (similarity to the query; else to the closest interest,
        fused with `recall`'s prior term, default the pipeline's); the second stage is `stage` (default:
        the pipeline's). `leave_out` is kept out of both CTR priors. Ids missing from the corpus score 0.
        """
        query = _clean_query(query)
        known = [i for i, news_id in enumerate(news_ids) if news_id in self.corpus.news and self.index.has(news_id)]
        retrieval = [0.0] * len(news_ids)
        rerank = [0.0] * len(news_ids)
        if not known:
            return retrieval, rerank
        vectors = self.index.embeddings([news_ids[i] for i in known])  # (N, D)
        query_vector = self.embedder.embed_queries([query])[0] if query else None
        if query_vector is not None:
            first = vectors @ query_vector
        elif profile.interests:
            first = (vectors @ np.stack([interest.vector for interest in profile.interests]).T).max(axis=1)
        else:
            first = np.zeros(len(known))
        if query_vector is None:  # For-you: the trending term too (recall.py), for readers with or without history
            first = (recall or self.recall).score([news_ids[i] for i in known], first, leave_out)
        candidates = [
            Candidate(item=self.corpus.news[news_ids[i]], retrieval_score=float(s), retrieval_rank=0, embedding=v)
            for i, s, v in zip(known, first, vectors, strict=True)
        ]
        request = RerankRequest(
            query=query, profile=profile, instruction=self.settings.instruction, now=self.now, query_vector=query_vector
        )
        model_scores = np.array(self.reranker.score(request, candidates), dtype=np.float64)
        second, _ = (stage or self.stage).score(request, candidates, model_scores, leave_out)
        for i, a, b in zip(known, first, second, strict=True):
            retrieval[i], rerank[i] = float(a), float(b)
        return retrieval, rerank


def without_parts(
    scores: np.ndarray, parts: list[dict[str, float]], names: Sequence[str]
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Scores and parts with the named parts taken out: each score loses exactly what those parts added.

    The freshness control at 0 means "age does not count": the lite reranker's freshness part and a
    learned model's freshness term go, so the breakdown, the reasons and the order all agree with it.
    """
    kept = [{name: value for name, value in p.items() if name not in names} for p in parts]
    removed = np.array([sum(v for name, v in p.items() if name in names) for p in parts], dtype=np.float64)
    return np.asarray(scores, dtype=np.float64) - removed.reshape(np.shape(scores)), kept


def model_options(settings: Settings, model: str, corpus: Corpus) -> dict:
    """Options every model factory receives; each uses what it needs."""
    options: dict = {"settings": settings, "image_root": corpus.root}
    if model:
        options["model"] = model
    return options


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean_query(query: str | None) -> str:
    query = (query or "").strip()
    if not query.isascii() and _SURROGATE.search(query):  # undecodable bytes from argv, lone surrogates from JSON
        raise InputError("query is not valid UTF-8 text (it holds undecodable bytes or unpaired surrogates)")
    if len(query) > MAX_QUERY_CHARS:
        raise InputError(f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    return query


def _positive(value: int, name: str) -> int:
    if int(value) < 1:
        raise InputError(f"{name} must be at least 1, got {value}")
    return int(value)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
