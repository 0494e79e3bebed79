"""MIND metrics checked by hand and against ranx; beyond-accuracy metrics on lists with known answers."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from newsrec.evaluation import metrics


def test_auc_counts_ordered_pairs_and_halves_ties():
    assert metrics.auc([1, 0, 0], [0.9, 0.1, 0.2]) == 1.0
    assert metrics.auc([1, 0, 0], [0.0, 0.1, 0.2]) == 0.0
    assert metrics.auc([1, 0, 1, 0], [0.8, 0.5, 0.4, 0.1]) == 0.75  # 3 of 4 (pos, neg) pairs in order
    assert metrics.auc([1, 0], [0.3, 0.3]) == 0.5
    assert math.isnan(metrics.auc([0, 0], [0.1, 0.2]))
    assert math.isnan(metrics.auc([1, 1], [0.1, 0.2]))


def test_auc_matches_the_pairwise_definition_on_random_lists():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(2, 12))
        labels = rng.integers(0, 2, n)
        if labels.min() == labels.max():
            continue
        scores = rng.integers(0, 4, n).astype(float)  # many ties
        pos, neg = scores[labels == 1], scores[labels == 0]
        expected = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
            len(pos) * len(neg)
        )
        assert metrics.auc(labels, scores) == pytest.approx(expected)


def test_mind_mrr_and_ndcg_by_hand():
    labels, scores = [0, 1, 0, 1], [0.9, 0.8, 0.1, 0.5]  # clicked items at ranks 2 and 3
    order = metrics.rank_order(scores)
    assert list(order) == [0, 1, 3, 2]
    assert metrics.mrr(labels, order) == pytest.approx((1 / 2 + 1 / 3) / 2)  # MIND: every click counts
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    ideal = 1 / math.log2(2) + 1 / math.log2(3)
    assert metrics.ndcg(labels, order, 10) == pytest.approx(dcg / ideal)
    assert metrics.ndcg(labels, order, 2) == pytest.approx((1 / math.log2(3)) / ideal)
    assert math.isnan(metrics.mrr([0, 0], np.array([0, 1])))


def test_ties_are_broken_reproducibly_and_not_by_position():
    scores = [0.0] * 8
    first = metrics.rank_order(scores, "imp-1")
    assert list(first) == list(metrics.rank_order(scores, "imp-1"))
    # Over many impressions, the first-listed candidate of an all-tie list lands first only ~1/8 of the time.
    firsts = sum(metrics.rank_order(scores, f"imp-{i}")[0] == 0 for i in range(800))
    assert 60 < firsts < 140


@pytest.mark.slow  # ranx compiles its numba kernels on first use (about 2 minutes on a cold cache)
def test_mrr_and_ndcg_match_ranx_on_single_click_impressions():
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    rng = np.random.default_rng(0)
    qrels, run, ours, single = {}, {}, {"mrr": [], "ndcg@5": [], "ndcg@10": []}, []
    for q in range(40):
        n = int(rng.integers(3, 15))
        labels = np.zeros(n, dtype=int)
        labels[rng.choice(n, size=1 if q % 2 else min(n - 1, 3), replace=False)] = 1
        scores = (rng.permutation(n) + 1) / n  # distinct positive scores: no tie-breaking differences
        qid = f"q{q:03d}"  # ranx returns per-query arrays in sorted id order
        qrels[qid] = {f"d{i}": 1 for i in range(n) if labels[i]}
        run[qid] = {f"d{i}": float(scores[i]) for i in range(n)}
        m = metrics.accuracy(labels, scores, qid)
        for key in ours:
            ours[key].append(m[key])
        single.append(labels.sum() == 1)
    theirs = ranx_evaluate(Qrels(qrels), Run(run), ["mrr", "ndcg@5", "ndcg@10"], return_mean=False)
    single = np.array(single)
    # nDCG with binary gains is the same measure everywhere
    np.testing.assert_allclose(ours["ndcg@5"], theirs["ndcg@5"], atol=1e-9)
    np.testing.assert_allclose(ours["ndcg@10"], theirs["ndcg@10"], atol=1e-9)
    # MRR: MIND's and TREC's agree with one click; with several, MIND averages over clicks (never more)
    np.testing.assert_allclose(np.array(ours["mrr"])[single], theirs["mrr"][single], atol=1e-9)
    assert (np.array(ours["mrr"])[~single] <= theirs["mrr"][~single] + 1e-9).all()
    assert (np.array(ours["mrr"])[~single] < theirs["mrr"][~single] - 1e-9).any()


def test_intra_list_diversity():
    same = np.tile([1.0, 0.0], (3, 1))
    orthogonal = np.eye(3)
    assert metrics.intra_list_diversity(same) == pytest.approx(0.0)
    assert metrics.intra_list_diversity(orthogonal) == pytest.approx(1.0)
    assert metrics.intra_list_diversity(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(2.0)
    assert math.isnan(metrics.intra_list_diversity(np.eye(2)[:1]))


def test_novelty_prefers_rare_items_and_smooths_unseen_ones():
    counts, total = metrics.popularity_table([["a", "b"], ["a"], ["a", "a"]])  # duplicates count once per user
    assert counts == Counter({"a": 3, "b": 1}) and total == 3
    assert metrics.novelty(["a"], counts, total) == pytest.approx(-math.log2(4 / 4))
    assert metrics.novelty(["b"], counts, total) == pytest.approx(-math.log2(2 / 4))
    assert metrics.novelty(["zzz"], counts, total) == pytest.approx(math.log2(4))
    assert metrics.novelty(["a", "b"], counts, total) == pytest.approx(0.5)


def test_calibration_is_zero_when_mix_matches_and_one_when_disjoint():
    assert metrics.calibration(["a", "a", "b", "b"], ["b", "a"]) == pytest.approx(0.0)
    assert metrics.calibration(["a", "a"], ["b", "c"]) == pytest.approx(1.0)
    partial = metrics.calibration(["a", "b"], ["a", "a"])
    assert 0.0 < partial < 1.0
    assert math.isnan(metrics.calibration([], ["a"]))


def test_coverage_of_the_catalogue():
    assert metrics.coverage([["a", "b"], ["b", "c"]], ["a", "b", "c", "d"]) == 0.75
    assert metrics.coverage([["x"]], ["a"]) == 0.0


def test_bootstrap_ci_contains_the_mean_and_groups_widen_it():
    rng = np.random.default_rng(1)
    # 50 users x 10 impressions, strong per-user effect: impressions of a user are not independent
    user_effect = np.repeat(rng.normal(0, 1, 50), 10)
    values = user_effect + rng.normal(0, 0.1, 500)
    groups = np.repeat(np.arange(50), 10)
    mean, low, high = metrics.bootstrap_mean_ci(values, seed=0)
    g_mean, g_low, g_high = metrics.bootstrap_mean_ci(values, groups, seed=0)
    assert low < mean < high and g_low < g_mean < g_high and mean == pytest.approx(g_mean)
    assert (g_high - g_low) > 2 * (high - low)
    nan_mean, *_ = metrics.bootstrap_mean_ci(np.array([1.0, np.nan, 3.0]))
    assert nan_mean == 2.0
