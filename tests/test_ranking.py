from datetime import datetime, timedelta, timezone

import numpy as np

from newsrec.cache import ScoreCache, score_key
from newsrec.ranking import cap_categories, cap_new_subjects, freshness_decay, mmr_order
from newsrec.types import NewsItem

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


def test_mmr_with_lambda_one_is_score_order():
    scores = np.array([0.2, 0.9, 0.5])
    assert mmr_order(scores, np.eye(3), 1.0, 3) == [1, 2, 0]


def test_mmr_skips_a_near_duplicate_when_diversity_is_asked_for():
    scores = np.array([1.0, 0.99, 0.6])
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # items 0 and 1 are the same story
    assert mmr_order(scores, embeddings, 1.0, 2) == [0, 1]
    assert mmr_order(scores, embeddings, 0.5, 2) == [0, 2]


def test_category_cap_fills_from_further_down():
    items = [NewsItem(str(i), "t", category=c) for i, c in enumerate(["a", "a", "a", "b", "c"])]
    assert cap_categories([0, 1, 2, 3, 4], items, cap=2, k=4) == [0, 1, 3, 4]
    assert cap_categories([0, 1, 2, 3, 4], items, cap=0, k=3) == [0, 1, 2]


def test_freshness_decay_halves_per_half_life_and_ignores_zero():
    items = [NewsItem("new", "t", published_at=NOW), NewsItem("old", "t", published_at=NOW - timedelta(days=7))]
    scores = np.array([1.0, 1.0])
    decayed = freshness_decay(scores, items, NOW, half_life_days=7)
    assert decayed[0] == 1.0 and abs(decayed[1] - 0.5) < 1e-9
    assert (freshness_decay(scores, items, NOW, 0) == scores).all()
    negative = freshness_decay(np.array([-0.2, -0.2]), items, NOW, half_life_days=7)
    assert negative[1] <= negative[0]  # decay never helps an old item, even below zero


def test_score_cache_persists_across_instances(tmp_path):
    path = tmp_path / "scores.sqlite"
    key = score_key("m", "instr", "q", "profile", "doc", "now")
    assert key != score_key("m", "instr", "q2", "profile", "doc", "now")
    first = ScoreCache(path, max_memory_items=1)
    first.put_many([(key, 0.75), ("other", 0.1)])
    assert first.get_many([key, "missing"]) == {key: 0.75}  # evicted from memory, found on disk
    assert ScoreCache(path).get_many([key]) == {key: 0.75}
    assert ScoreCache(None).get_many([key]) == {}


def test_cap_new_subjects_moves_the_third_card_of_a_new_subject_below_the_page():
    subjects = ["", "farm", "", "farm", "farm", "", "farm", "", ""]
    order, capped = cap_new_subjects(subjects, cap=2, k=5)
    assert order[:5] == [0, 1, 2, 3, 5]  # the third and fourth "farm" cards leave the first five slots ...
    assert order[5:] == [4, 6, 7, 8]  # ... and stay first below the page, in their order
    assert capped == {"farm"}
    assert cap_new_subjects(subjects, cap=0, k=5) == (list(range(9)), set())
    assert cap_new_subjects(["", "", ""], cap=1, k=3) == ([0, 1, 2], set())  # familiar subjects are never capped
