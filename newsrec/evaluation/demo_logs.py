"""Impression logs built from the simulated readers of the demo corpus, for evaluation without real logs.

The demo corpus has a handful of personas, each with a reading history. Each persona stands for a group
of similar readers: reader r of persona u has read a random part of u's history before a cut point and
then clicks the item u actually read next, shown among `negatives` items u never read. One impression
per reader, so an A/B test on the demo has enough users per arm to compute its statistics.

Each impression shows 20 items, like a front page (MIND shows 37 on average), so a top-10 list is a real
choice. The 19 unclicked items are a mix: stories from the clicked item's own category (same topic, other
story: a scorer must tell stories apart, not only topics), stories other personas read (popular ones:
without them the popularity baseline would win by recognising "clicked somewhere in this log"), and
random unread stories. This is a sanity benchmark for the demo, not a substitute for a real log.
"""

from __future__ import annotations

import math

import numpy as np

from newsrec.config import DEMO_CORPUS, Settings
from newsrec.data.corpus import Corpus, load_corpus
from newsrec.evaluation.offline import ImpressionLog
from newsrec.types import Impression

DEMO_LOG = "demo-logs"


def build_demo_impressions(
    corpus: Corpus, readers_per_user: int = 20, negatives: int = 19, seed: int = 0
) -> list[Impression]:
    """`readers_per_user` impressions per persona with a history, each with one click and `negatives` others."""
    rng = np.random.default_rng(seed)
    catalogue = sorted(corpus.news)
    by_category: dict[str, list[str]] = {}
    for news_id in catalogue:
        by_category.setdefault(corpus.news[news_id].category, []).append(news_id)
    reads = {
        user.id: [entry.news_id for entry in user.history if entry.news_id in corpus.news]
        for user in corpus.users.values()
    }
    impressions: list[Impression] = []
    for user in sorted(corpus.users.values(), key=lambda u: u.id):
        read = reads[user.id]
        if len(read) < 3:
            continue
        unread = [news_id for news_id in catalogue if news_id not in set(read)]
        # what other personas click in this log: the second half of their histories
        popular = sorted(
            {i for other, items in reads.items() if other != user.id for i in items[len(items) // 2 :]} - set(read)
        )
        for reader in range(readers_per_user):
            cut = int(rng.integers(math.ceil(len(read) / 2), len(read)))  # the item read next: read[cut]
            earlier = read[:cut]
            keep = min(len(earlier), max(2, int(round(0.7 * len(earlier)))))
            history = [earlier[i] for i in sorted(rng.choice(len(earlier), size=keep, replace=False))]
            clicked = read[cut]
            same_topic = [i for i in by_category.get(corpus.news[clicked].category, []) if i in unread]
            hard = _pick(rng, same_topic, negatives // 3, set())
            liked = _pick(rng, popular, negatives // 3, set(hard))
            easy = _pick(rng, unread, negatives - len(hard) - len(liked), {*hard, *liked})
            candidates = [clicked, *hard, *liked, *easy]
            labels = [1] + [0] * (len(candidates) - 1)
            order = rng.permutation(len(candidates))
            impressions.append(
                Impression(
                    id=f"{DEMO_LOG}-{user.id}-r{reader:02d}",
                    user_id=f"{user.id}-r{reader:02d}",
                    history=history,
                    candidates=[candidates[i] for i in order],
                    labels=[labels[i] for i in order],
                )
            )
    return impressions


def _pick(rng: np.random.Generator, pool: list[str], n: int, taken: set[str]) -> list[str]:
    pool = [item for item in pool if item not in taken]
    if n <= 0 or not pool:
        return []
    return [pool[i] for i in rng.choice(len(pool), size=min(n, len(pool)), replace=False)]


def demo_log(settings: Settings, readers_per_user: int = 20, seed: int = 0) -> ImpressionLog:
    """The demo corpus's logged impressions when it ships some, else ones built from its personas."""
    corpus = load_corpus(settings, DEMO_CORPUS)
    impressions = corpus.impressions or build_demo_impressions(corpus, readers_per_user, seed=seed)
    return ImpressionLog(name=DEMO_LOG, news=corpus.news, impressions=impressions)
