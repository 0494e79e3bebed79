"""A/B framework on synthetic data: assignment, replay, click model, and statistics that detect a known
effect and keep the false-positive rate near alpha when there is none."""

from __future__ import annotations

import numpy as np
import pytest

from newsrec.errors import InputError
from newsrec.evaluation.ab import Variant, assign, collect, compare, make_rank_fn, run_experiment
from newsrec.evaluation.offline import RandomScorer
from newsrec.types import Impression


def synthetic_log(users: int = 300, per_user: int = 3, n: int = 10, seed: int = 0) -> list[Impression]:
    rng = np.random.default_rng(seed)
    impressions = []
    for u in range(users):
        for j in range(per_user):
            labels = [0] * n
            labels[int(rng.integers(n))] = 1
            impressions.append(
                Impression(
                    id=f"i{u}-{j}",
                    user_id=f"user{u}",
                    history=[],
                    candidates=[f"n{u}-{j}-{c}" for c in range(n)],
                    labels=labels,
                )
            )
    return impressions


class PeekingScorer:
    """A stand-in for a better model: ranks the clicked item first for a share `skill` of impressions."""

    name = "retrieval"

    def __init__(self, skill: float):
        self.skill = skill
        self.random = RandomScorer(seed=7)

    def score(self, impression: Impression) -> list[float]:
        scores = self.random.score(impression)
        if metrics_hash(impression.id) < self.skill:
            scores[impression.labels.index(1)] = 1e6
        return scores


def metrics_hash(text: str) -> float:
    import hashlib

    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8


# --- assignment ---------------------------------------------------------------------------------------


def test_assignment_is_deterministic_balanced_and_per_experiment():
    users = [f"user{i}" for i in range(10_000)]
    first = [assign(u, "exp-1", ["A", "B"]) for u in users]
    assert first == [assign(u, "exp-1", ["A", "B"]) for u in users]
    assert 0.48 < first.count("A") / len(users) < 0.52
    other = [assign(u, "exp-2", ["A", "B"]) for u in users]
    same = np.mean([a == b for a, b in zip(first, other, strict=True)])
    assert 0.47 < same < 0.53  # a new experiment reshuffles users independently
    skewed = [assign(u, "exp-1", ["A", "B"], weights=[0.9, 0.1]) for u in users]
    assert 0.88 < skewed.count("A") / len(users) < 0.92
    with pytest.raises(InputError):
        assign("u", "e", [])


def test_variant_specs():
    assert Variant.parse("A=retrieval") == Variant("A", "retrieval", 1.0)
    assert Variant.parse("C=rerank,mmr=0.7") == Variant("C", "rerank", 0.7)
    assert Variant.parse("C=rerank,mmr=0.7").label == "C=rerank,mmr=0.7"
    for bad in ("rerank", "A=", "A=bert", "A=rerank,mmr=2", "A=rerank,temp=1", "A=rerank,mmr=x"):
        with pytest.raises(InputError):
            Variant.parse(bad)


# --- outcomes -----------------------------------------------------------------------------------------


def test_replay_counts_a_click_only_when_a_logged_click_is_shown():
    impression = Impression("i", "u", [], ["a", "b", "c", "d"], [0, 0, 1, 0])

    def shows(indices):
        return lambda variant, imp, k: indices

    variants = [Variant("A", "random"), Variant("B", "random")]
    arms = collect([impression], variants, shows([2, 0]), "e", "replay", k=2)
    arm = next(a for a in arms.values() if a.users)
    assert arm.clicks == [1] and arm.slots == [2] and arm.dwell == [60.0]
    arms = collect([impression], variants, shows([0, 1]), "e", "replay", k=2)
    arm = next(a for a in arms.values() if a.users)
    assert arm.clicks == [0] and arm.per_user("ctr").tolist() == [0.0]


def test_click_model_is_position_biased():
    # The same relevant item shown at rank 1 vs rank 3 under the simulator: clicks fall with 1/rank.
    log = synthetic_log(users=2000, per_user=1, n=3, seed=1)

    def at_rank(rank):
        def rank_fn(variant, impression, k):
            clicked = impression.labels.index(1)
            others = [i for i in range(3) if i != clicked]
            order = others[:]
            order.insert(rank - 1, clicked)
            return order

        return rank_fn

    variants = [Variant("A", "random"), Variant("B", "random")]
    ctr = []
    for rank in (1, 3):
        arms = collect(log, variants, at_rank(rank), "pbm", "simulate", k=3, seed=0)
        clicks = sum(sum(a.clicks) for a in arms.values())
        ctr.append(clicks / len(log))
    # expected clicks per impression: 0.9/rank for the relevant item + 0.05 * examination of the other two
    assert ctr[0] == pytest.approx(0.9 + 0.05 * (1 / 2 + 1 / 3), abs=0.04)
    assert ctr[1] == pytest.approx(0.9 / 3 + 0.05 * (1 + 1 / 2), abs=0.04)


# --- statistics ---------------------------------------------------------------------------------------


def test_known_effect_is_detected_with_a_ci_around_it():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 400), rng.normal(1.3, 1.0, 400)
    result = compare(a, b, "clicks", seed=1)
    assert result.significant and result.p_value < 0.01
    assert result.ci_low < 0.3 < result.ci_high and result.ci_low > 0
    assert result.verdict.startswith("B is higher")
    assert 0.15 < result.mde < 0.25  # 2.8 * sqrt(2/400) = 0.198


def test_false_positive_rate_is_about_alpha_without_an_effect():
    rng = np.random.default_rng(42)
    reps, rejections = 300, 0
    for rep in range(reps):
        # skewed per-user outcomes, like clicks per user: Poisson with user-level gamma heterogeneity
        a = rng.poisson(rng.gamma(2.0, 0.5, 80))
        b = rng.poisson(rng.gamma(2.0, 0.5, 80))
        rejections += compare(a, b, n_boot=100, n_perm=300, seed=rep).significant
    rate = rejections / reps
    assert 0.015 <= rate <= 0.09, rate  # alpha = 0.05; binomial 3-sigma band for 300 repetitions


def test_an_effect_equal_to_the_mde_is_found_about_80_percent_of_the_time():
    rng = np.random.default_rng(5)
    n, sd = 100, 1.0
    mde = compare(rng.normal(0, sd, n), rng.normal(0, sd, n)).mde
    hits = sum(
        compare(rng.normal(0, sd, n), rng.normal(mde, sd, n), n_boot=100, n_perm=300, seed=i).significant
        for i in range(200)
    )
    assert 0.68 <= hits / 200 <= 0.92


def test_no_effect_is_reported_as_no_significant_difference():
    a, b = np.random.default_rng(2).normal(0, 1, (2, 200))
    result = compare(a, b, "ctr")
    assert not result.significant
    assert result.verdict.startswith("no significant difference in ctr")
    assert result.ci_low < 0 < result.ci_high


# --- whole experiments -----------------------------------------------------------------------------------


def test_experiment_detects_a_better_ranker_in_replay_and_simulation():
    log = synthetic_log(users=300, per_user=3)
    rank_fn = make_rank_fn({"random": RandomScorer(seed=1), "retrieval": PeekingScorer(skill=0.5)})
    variants = [Variant("A", "random"), Variant("B", "retrieval")]
    for mode in ("replay", "simulate"):
        result = run_experiment(log, variants, rank_fn, "better", mode=mode, k=3, n_resamples=500)
        by_metric = {c.metric: c for c in result.comparisons}
        assert by_metric["ctr"].significant and by_metric["ctr"].difference > 0, mode
        assert by_metric["clicks_per_user"].significant
        users = {v["variant"]: v["users"] for v in result.variants}
        assert sum(users.values()) == 300 and min(users.values()) > 120


def test_a_a_experiment_finds_no_difference():
    log = synthetic_log(users=300, per_user=3, seed=3)
    rank_fn = make_rank_fn({"random": RandomScorer(seed=1)})
    result = run_experiment(log, [Variant("A", "random"), Variant("B", "random")], rank_fn, "aa", "simulate")
    ctr = next(c for c in result.comparisons if c.metric == "ctr")
    assert not ctr.significant and "no significant difference" in ctr.verdict
    assert result.to_json()["comparisons"][0]["metric"] == "ctr"


def test_mmr_variant_changes_the_shown_list_towards_diversity():
    impression = Impression("i", "u", [], ["a", "a2", "b"], [1, 0, 0])
    vectors = {"a": [1.0, 0.0], "a2": [0.99, 0.141], "b": [0.0, 1.0]}

    class Fixed:
        name = "rerank"

        def score(self, imp):
            return [0.9, 0.8, 0.5]

    def embed(ids):
        return np.array([vectors[i] for i in ids])

    rank_fn = make_rank_fn({"rerank": Fixed()}, embed)
    assert rank_fn(Variant("A", "rerank"), impression, 2) == [0, 1]
    assert rank_fn(Variant("B", "rerank", mmr_lambda=0.3), impression, 2) == [0, 2]


def test_experiment_input_errors():
    log = synthetic_log(users=4, per_user=1)
    rank_fn = make_rank_fn({"random": RandomScorer()})
    with pytest.raises(InputError):
        run_experiment(log, [Variant("A", "random")], rank_fn)
    with pytest.raises(InputError):
        run_experiment(log, [Variant("A", "random"), Variant("A", "random")], rank_fn)
    with pytest.raises(InputError):
        run_experiment(log, [Variant("A", "random"), Variant("B", "random")], rank_fn, mode="bandit")
    with pytest.raises(InputError):
        run_experiment(synthetic_log(users=50, per_user=1), [Variant("A", "random"), Variant("B", "rerank")], rank_fn)
    tiny = run_experiment(log[:1], [Variant("A", "random"), Variant("B", "random")], rank_fn)
    assert tiny.comparisons == [] and "too few users" in tiny.notes[0]
