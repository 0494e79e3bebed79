"""Measuring the recommender: offline metrics on impression logs, A/B tests, editor judgments.

- metrics.py: MIND accuracy metrics (AUC, MRR, nDCG@5/10) and beyond-accuracy metrics of a top-k list
- offline.py: scorers (random, popularity, retrieval, rerank) and the evaluation loop over a log
- ab.py: deterministic assignment, replay and click-model outcomes, bootstrap/permutation statistics
- judgments.py: durable editor relevance judgments (SQLite), nDCG per configuration, export as a judged set
- judged.py: graded judgments of searches and For-you feeds (JSONL), scored on the live pipeline
- demo_logs.py: impression logs built from the demo corpus's simulated readers
"""

from __future__ import annotations

from newsrec.evaluation.ab import ABResult, Comparison, Variant, assign, compare, make_rank_fn, run_experiment
from newsrec.evaluation.judgments import Judgment, JudgmentStore
from newsrec.evaluation.offline import (
    SCORER_NAMES,
    EvaluationReport,
    ImpressionLog,
    ItemContext,
    Scorer,
    evaluate,
    load_mind_log,
    make_scorers,
    sample,
)

__all__ = [
    "ABResult",
    "Comparison",
    "EvaluationReport",
    "ImpressionLog",
    "ItemContext",
    "Judgment",
    "JudgmentStore",
    "SCORER_NAMES",
    "Scorer",
    "Variant",
    "assign",
    "compare",
    "evaluate",
    "load_mind_log",
    "make_rank_fn",
    "make_scorers",
    "run_experiment",
    "sample",
]
