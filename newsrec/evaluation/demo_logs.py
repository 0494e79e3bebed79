"""Impression logs simulated from the demo corpus's personas: each reader clicks what its persona would.

The demo corpus has ten personas, each with a reading history. Reader r of persona u has read a random
part of u's history and sees front pages of 20 unread stories (a mix of u's topics and everything
else). Whether it clicks a story follows a click model, not our recommender:

    P(click in slot s) = examination(s) * sigmoid(BIAS + TASTE * taste(u, item) + appeal(item))

- taste(u, item) in [0, 1]: half the share of the item's category in u's whole history, half the
  character n-gram TF-IDF similarity of the item to u's history (scikit-learn; independent of the
  recommender's embedders, so no scorer is graded by its own yardstick);
- appeal(item): a hidden per-story attractiveness (seeded), which only the clicks of other readers
  reveal: what exposure-aware popularity and the learned ranker can pick up and a pure content
  scorer cannot;
- examination(s) = 1 / sqrt(1 + s): the log's order is the display order, with position bias, as in
  real logs.

Pages without a click are dropped, as MIND logs have none. Several impressions per reader and 30
readers per persona give the user split about 60 test readers. This is a sanity benchmark for the
demo, not a substitute for a real log.
"""

from __future__ import annotations

import numpy as np

from newsrec.config import DEMO_CORPUS, Settings
from newsrec.data.corpus import Corpus, load_corpus
from newsrec.evaluation.offline import ImpressionLog
from newsrec.types import Impression

DEMO_LOG = "demo-logs"
ABOUT = (
    "Demo logs: simulated readers of the ten demo personas clicking stories by a click model (their "
    "persona's topics, each story's hidden appeal, position bias); not real users."
)
PAGE = 20  # stories per front page (MIND shows 37 on average)
BIAS, TASTE, APPEAL_SD = -3.5, 5.0, 1.0  # click model: log-odds of a click for taste 0 / per unit of taste


def persona_taste(corpus: Corpus) -> dict[str, dict[str, float]]:
    """user id -> news id -> taste in [0, 1] from the persona's whole history (category share + text similarity)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    ids = sorted(corpus.news)
    texts = [corpus.news[i].text for i in ids]
    matrix = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit_transform(texts)
    row = {news_id: n for n, news_id in enumerate(ids)}
    taste: dict[str, dict[str, float]] = {}
    for user in corpus.users.values():
        read = [entry.news_id for entry in user.history if entry.news_id in row]
        if not read:
            continue
        centre = np.asarray(matrix[[row[i] for i in read]].mean(axis=0))  # (1, V)
        similarity = np.asarray(matrix @ centre.T).ravel()  # (N,)
        similarity = similarity / (similarity.max() or 1.0)
        categories = [corpus.news[i].category for i in read]
        share = {c: categories.count(c) / len(categories) for c in set(categories)}
        top = max(share.values())
        taste[user.id] = {
            news_id: 0.5 * share.get(corpus.news[news_id].category, 0.0) / top + 0.5 * float(similarity[n])
            for news_id, n in row.items()
        }
    return taste


def build_demo_impressions(
    corpus: Corpus, readers_per_user: int = 30, pages_per_reader: int = 3, seed: int = 0
) -> list[Impression]:
    """`readers_per_user` readers per persona with a history, up to `pages_per_reader` clicked pages each."""
    rng = np.random.default_rng(seed)
    catalogue = sorted(corpus.news)
    appeal = dict(zip(catalogue, rng.normal(0.0, APPEAL_SD, size=len(catalogue)), strict=True))
    taste = persona_taste(corpus)
    examination = 1.0 / np.sqrt(1.0 + np.arange(PAGE))
    impressions: list[Impression] = []
    for user in sorted(corpus.users.values(), key=lambda u: u.id):
        read = [entry.news_id for entry in user.history if entry.news_id in corpus.news]
        if len(read) < 3:
            continue
        liked = sorted(catalogue, key=lambda i: -taste[user.id][i])
        for reader in range(readers_per_user):
            keep = max(2, int(round(0.6 * len(read))))
            history = [read[i] for i in sorted(rng.choice(len(read), size=keep, replace=False))]
            unread = [i for i in catalogue if i not in set(history)]
            topical = [i for i in liked if i in set(unread)][:40]  # the persona's own topics: a third of a page
            for page in range(pages_per_reader):
                near = list(rng.choice(topical, size=PAGE // 3, replace=False))
                rest = [i for i in unread if i not in set(near)]
                shown = near + list(rng.choice(rest, size=PAGE - len(near), replace=False))
                shown = [shown[i] for i in rng.permutation(len(shown))]
                logits = np.array([BIAS + TASTE * taste[user.id][i] + appeal[i] for i in shown])
                clicks = rng.random(PAGE) < examination * (1.0 / (1.0 + np.exp(-logits)))
                if not clicks.any() or clicks.all():
                    continue
                impressions.append(
                    Impression(
                        id=f"{DEMO_LOG}-{user.id}-r{reader:02d}-p{page}",
                        user_id=f"{user.id}-r{reader:02d}",
                        history=history,
                        candidates=[str(i) for i in shown],
                        labels=[int(c) for c in clicks],
                    )
                )
    return impressions


def demo_log(settings: Settings, readers_per_user: int = 30, seed: int = 0) -> ImpressionLog:
    """The demo corpus's logged impressions when it ships some, else ones simulated from its personas."""
    corpus = load_corpus(settings, DEMO_CORPUS)
    impressions = corpus.impressions or build_demo_impressions(corpus, readers_per_user, seed=seed)
    return ImpressionLog(name=DEMO_LOG, news=corpus.news, impressions=impressions)
