"""A/B testing on logged impressions: assign users to variants, get outcomes by replay or a click model,
then compare each variant with the control (the first one) with honest statistics.

    variants = [Variant.parse("A=retrieval"), Variant.parse("B=rerank")]
    result = run_experiment(impressions, variants, rank_fn, experiment="rerank-v1", mode="simulate")

Outcomes:
- replay: the variant shows its top-k of the logged candidates; a click counts only where a logged clicked
  item is among them (the counterfactual "would the user still have found it").
- simulate: a position-based click model (Craswell et al. 2008; Chuklin et al. 2015): P(click at rank r) =
  examination(r) * attractiveness(item), examination = 1 / r**eta, attractiveness high for items the user
  clicked in the log and low otherwise. Clicks on logged-clicked items read for the article's length
  (the dwell proxy); other clicks bounce after a few seconds.

The unit of analysis is the user (assignment is per user, and one user's impressions are correlated):
every metric is a per-user value, compared across arms with a bootstrap CI of the difference of means,
a permutation p-value and the minimum detectable effect at 80% power. All vectorised numpy.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from newsrec.errors import InputError
from newsrec.evaluation import metrics
from newsrec.evaluation.offline import SCORER_NAMES, Scorer
from newsrec.ranking import mmr_order
from newsrec.types import Impression, NewsItem

MODES = ("replay", "simulate")
ATTRACTIVE_CLICKED, ATTRACTIVE_OTHER = 0.9, 0.05  # click-model attractiveness of logged clicked / other items
EXAMINATION_ETA = 1.0  # examination(r) = 1 / r**eta
BOUNCE_SECONDS = 5.0  # dwell of a click on an item the user did not want
READ_WORDS_PER_SECOND = 230 / 60  # reading speed behind the dwell proxy
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
COMPARED = ("ctr", "clicks_per_user", "dwell_per_user", "diversity")


# --- variants and assignment ------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A pipeline configuration under test: which score orders the list, and the MMR diversity λ."""

    name: str
    scorer: str
    mmr_lambda: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """`NAME=SCORER[,mmr=LAMBDA]`, e.g. `A=retrieval`, `B=rerank`, `C=rerank,mmr=0.7`."""
        name, sep, config = spec.partition("=")
        parts = [part.strip() for part in config.split(",") if part.strip()]
        if not sep or not name.strip() or not parts:
            raise InputError(f"variant {spec!r}: write NAME=SCORER[,mmr=LAMBDA], e.g. B=rerank,mmr=0.7")
        scorer, options = parts[0], parts[1:]
        if scorer not in SCORER_NAMES:
            raise InputError(f"variant {spec!r}: unknown scorer {scorer!r}; choose from {', '.join(SCORER_NAMES)}")
        mmr = 1.0
        for option in options:
            key, _, value = option.partition("=")
            try:
                if key.strip() != "mmr":
                    raise ValueError
                mmr = float(value)
            except ValueError:
                raise InputError(f"variant {spec!r}: unknown option {option!r} (only mmr=LAMBDA)") from None
            if not 0.0 <= mmr <= 1.0:
                raise InputError(f"variant {spec!r}: mmr must lie in [0, 1]")
        return cls(name=name.strip(), scorer=scorer, mmr_lambda=mmr)

    @property
    def label(self) -> str:
        return f"{self.name}={self.scorer}" + (f",mmr={self.mmr_lambda:g}" if self.mmr_lambda < 1 else "")


def assign(user_id: str, experiment: str, variants: Sequence[str], weights: Sequence[float] | None = None) -> str:
    """Deterministic bucket of a user: same user and experiment -> same variant, on any machine, forever.

    A new experiment name reshuffles everybody, so one test's assignment does not carry over to the next.
    """
    if not variants:
        raise InputError("an experiment needs at least one variant")
    weights = np.ones(len(variants)) if weights is None else np.asarray(weights, dtype=np.float64)
    digest = hashlib.sha256(f"{experiment}\x00{user_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    edges = np.cumsum(weights) / weights.sum()
    return variants[min(int(np.searchsorted(edges, point, side="right")), len(variants) - 1)]


def reading_seconds(news: dict[str, NewsItem]) -> Callable[[str], float]:
    """Dwell proxy of a satisfied click: time to read the article's title and body, 10 s to 10 min.

    A Chinese character counts as half a word (readers take in ~500 characters or ~230 words a minute).
    """

    def seconds(news_id: str) -> float:
        item = news.get(news_id)
        text = item.text if item else ""
        cjk = len(_CJK.findall(text))
        words = len(_CJK.sub(" ", text).split()) + cjk / 2
        return float(min(max(words / READ_WORDS_PER_SECOND, 10.0), 600.0))

    return seconds


# --- outcomes ------------------------------------------------------------------------------------------

# rank_fn(variant, impression, k) -> indices of the candidates the variant shows, best first
RankFn = Callable[[Variant, Impression, int], Sequence[int]]


def make_rank_fn(scorers: dict[str, Scorer], embed: Callable[[list[str]], np.ndarray] | None = None) -> RankFn:
    """Rank by the variant's scorer; with mmr < 1 re-order by MMR over the items' embeddings (pipeline's own)."""

    def rank(variant: Variant, impression: Impression, k: int) -> list[int]:
        if variant.scorer not in scorers:
            raise InputError(f"variant {variant.label}: scorer {variant.scorer!r} is not available here")
        scores = np.asarray(scorers[variant.scorer].score(impression), dtype=np.float64)
        if variant.mmr_lambda < 1.0 and embed is not None:
            vectors = embed(list(impression.candidates))
            if len(vectors) == len(scores):  # every candidate embedded; else fall back to plain order
                return [int(i) for i in mmr_order(scores, vectors, variant.mmr_lambda, k)]
        return [int(i) for i in metrics.rank_order(scores, impression.id)[:k]]

    return rank


@dataclass
class Arm:
    """Per-user outcomes of one variant; every array is aligned with `users`."""

    variant: Variant
    users: list[str] = field(default_factory=list)
    impressions: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    clicks: list[float] = field(default_factory=list)
    dwell: list[float] = field(default_factory=list)
    diversity: list[float] = field(default_factory=list)  # mean ILD of the user's shown lists
    shown: set[str] = field(default_factory=set)

    def per_user(self, metric: str) -> np.ndarray:
        clicks, slots = np.asarray(self.clicks, dtype=np.float64), np.asarray(self.slots, dtype=np.float64)
        if metric == "ctr":
            return clicks / np.maximum(slots, 1)
        if metric == "clicks_per_user":
            return clicks
        if metric == "dwell_per_user":
            return np.asarray(self.dwell, dtype=np.float64)
        if metric == "diversity":
            values = np.asarray(self.diversity, dtype=np.float64)
            return values[~np.isnan(values)]
        raise InputError(f"unknown metric {metric!r}")


def collect(
    impressions: Sequence[Impression],
    variants: Sequence[Variant],
    rank_fn: RankFn,
    experiment: str,
    mode: str = "replay",
    k: int = 3,
    seed: int = 0,
    read_seconds: Callable[[str], float] | None = None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> dict[str, Arm]:
    """Outcomes per variant: each user sees only the variant they are assigned to."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    names = [variant.name for variant in variants]
    if len(set(names)) != len(names):
        raise InputError(f"variant names must differ, got {names}")
    by_name = {variant.name: variant for variant in variants}
    read_seconds = read_seconds or (lambda news_id: 60.0)
    rng = np.random.default_rng(seed)
    examination = 1.0 / np.arange(1, k + 1) ** EXAMINATION_ETA  # (k,)
    per_user: dict[str, dict] = {}
    arms = {name: Arm(variant) for name, variant in by_name.items()}
    for impression in impressions:
        name = assign(impression.user_id, experiment, names)
        shown = [int(i) for i in rank_fn(by_name[name], impression, k)][:k]
        labels = np.asarray(impression.labels, dtype=np.float64)[shown]  # (s,)
        shown_ids = [impression.candidates[i] for i in shown]
        if mode == "replay":
            clicked = labels > 0
        else:
            attractive = np.where(labels > 0, ATTRACTIVE_CLICKED, ATTRACTIVE_OTHER)
            clicked = rng.random(len(shown)) < examination[: len(shown)] * attractive
        dwell = sum(
            read_seconds(news_id) if label > 0 else BOUNCE_SECONDS
            for news_id, label, hit in zip(shown_ids, labels, clicked, strict=True)
            if hit
        )
        state = per_user.setdefault(
            impression.user_id, {"arm": name, "n": 0, "slots": 0, "clicks": 0, "dwell": 0.0, "ild": []}
        )
        state["n"] += 1
        state["slots"] += len(shown)
        state["clicks"] += int(clicked.sum())
        state["dwell"] += dwell
        if embed is not None and len(shown_ids) > 1:
            state["ild"].append(metrics.intra_list_diversity(embed(shown_ids)))
        arms[name].shown.update(shown_ids)
    for user_id, state in per_user.items():
        arm = arms[state["arm"]]
        arm.users.append(user_id)
        arm.impressions.append(state["n"])
        arm.slots.append(state["slots"])
        arm.clicks.append(state["clicks"])
        arm.dwell.append(state["dwell"])
        arm.diversity.append(float(np.nanmean(state["ild"])) if state["ild"] else math.nan)
    return arms


# --- statistics ------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    metric: str
    control: str
    treatment: str
    control_mean: float
    treatment_mean: float
    difference: float  # treatment - control
    ci_low: float
    ci_high: float
    p_value: float  # two-sided permutation test
    mde: float  # smallest |difference| this sample detects with 80% power at `alpha`
    alpha: float
    significant: bool
    verdict: str


def compare(
    control: np.ndarray,
    treatment: np.ndarray,
    metric: str = "",
    names: tuple[str, str] = ("A", "B"),
    alpha: float = 0.05,
    power: float = 0.8,
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Difference of means (treatment - control) with a bootstrap CI, a permutation p-value and the MDE."""
    a, b = np.asarray(control, dtype=np.float64), np.asarray(treatment, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise InputError(f"{metric or 'metric'}: each arm needs at least 2 users (got {len(a)} and {len(b)})")
    rng = np.random.default_rng(seed)
    observed = b.mean() - a.mean()
    boot_b = b[rng.integers(0, len(b), (n_boot, len(b)))].mean(axis=1)  # (B,)
    boot_a = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(axis=1)
    boot = boot_b - boot_a
    low, high = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    p_value = permutation_p_value(a, b, n_perm, rng)
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    from scipy.stats import norm  # loaded when comparing, not when the CLI starts

    mde = (norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se
    significant = bool(p_value < alpha)
    control_name, treatment_name = names
    if significant:
        better = treatment_name if observed > 0 else control_name
        verdict = (
            f"{better} is higher on {metric}: {treatment_name} - {control_name} = {observed:+.4g} "
            f"(95% CI {low:+.4g} to {high:+.4g}, p = {p_value:.3g})"
        )
    else:
        verdict = (
            f"no significant difference in {metric} (difference {observed:+.4g}, 95% CI {low:+.4g} to {high:+.4g}, "
            f"p = {p_value:.3g}; this sample detects only differences of about ±{mde:.3g})"
        )
    return Comparison(
        metric=metric,
        control=control_name,
        treatment=treatment_name,
        control_mean=float(a.mean()),
        treatment_mean=float(b.mean()),
        difference=float(observed),
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(p_value),
        mde=float(mde),
        alpha=alpha,
        significant=significant,
        verdict=verdict,
    )


def permutation_p_value(a: np.ndarray, b: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """Two-sided: share of label shuffles whose |difference of means| reaches the observed one (+1 smoothing)."""
    pooled = np.concatenate([a, b])
    n, n_b = len(pooled), len(b)
    observed = abs(b.mean() - a.mean())
    total = pooled.sum()
    hits = 0
    chunk = max(1, 4_000_000 // n)  # bound memory: (chunk, n) random keys at a time
    for start in range(0, n_perm, chunk):
        rows = min(chunk, n_perm - start)
        picks = np.argpartition(rng.random((rows, n)), n_b, axis=1)[:, :n_b]  # a random n_b-subset per row
        sum_b = pooled[picks].sum(axis=1)
        diffs = np.abs(sum_b / n_b - (total - sum_b) / (n - n_b))
        hits += int((diffs >= observed - 1e-12).sum())
    return (hits + 1) / (n_perm + 1)


# --- the whole experiment ---------------------------------------------------------------------------------


@dataclass
class ABResult:
    experiment: str
    mode: str
    k: int
    variants: list[dict]  # per variant: label, users, impressions, ctr, clicks_per_user, dwell_per_user, ...
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)  # why a comparison is missing

    def to_json(self) -> dict:
        return {
            "experiment": self.experiment,
            "mode": self.mode,
            "k": self.k,
            "variants": self.variants,
            "comparisons": [asdict(c) for c in self.comparisons],
            "notes": self.notes,
        }


def run_experiment(
    impressions: Sequence[Impression],
    variants: Sequence[Variant],
    rank_fn: RankFn,
    experiment: str = "experiment",
    mode: str = "replay",
    k: int = 3,
    alpha: float = 0.05,
    seed: int = 0,
    read_seconds: Callable[[str], float] | None = None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    n_resamples: int = 2000,
) -> ABResult:
    """Collect outcomes and compare every variant with the first (the control) on each metric."""
    if len(variants) < 2:
        raise InputError("an A/B test needs at least two variants, e.g. A=retrieval B=rerank")
    arms = collect(impressions, variants, rank_fn, experiment, mode, k, seed, read_seconds, embed)
    catalogue = {c for impression in impressions for c in impression.candidates}
    summaries = []
    for arm in arms.values():
        summary = {
            "variant": arm.variant.name,
            "config": arm.variant.label,
            "users": len(arm.users),
            "impressions": int(sum(arm.impressions)),
            "coverage": len(arm.shown) / len(catalogue) if catalogue else math.nan,
        }
        for metric in COMPARED:
            values = arm.per_user(metric)
            summary[metric] = float(values.mean()) if len(values) else math.nan
        summaries.append(summary)
    control = arms[variants[0].name]
    comparisons, notes = [], []
    for variant in variants[1:]:
        arm = arms[variant.name]
        for metric in COMPARED:
            a, b = control.per_user(metric), arm.per_user(metric)
            if len(a) < 2 or len(b) < 2:  # a tiny sample, or no embeddings for diversity
                notes.append(
                    f"{metric}: too few users with a value to compare {control.variant.name} and "
                    f"{variant.name} ({len(a)} and {len(b)}; at least 2 each)"
                )
                continue
            comparisons.append(
                compare(
                    a,
                    b,
                    metric,
                    (control.variant.name, variant.name),
                    alpha,
                    n_boot=n_resamples,
                    n_perm=n_resamples,
                    seed=seed,
                )
            )
    return ABResult(experiment, mode, k, summaries, comparisons, notes)
