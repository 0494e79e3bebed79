"""How the fixed weights were chosen: AUC of the weight grid on *training* users only.

    python -m newsrec.evaluation.sweep --corpus nemig      # NeMig-en (after ingest)
    python -m newsrec.evaluation.sweep                     # the demo logs

Two fixed weights combine a content score with the CTR prior: the For-you first stage's
`trend_weight` (cosine + w x clip(log-odds, -1, 1), newsrec/recall.py) and the default blend's
`prior_weight` (lite score + w x log-odds, learning/stage.py). Choosing them on the test users would
be a leak, so this measures each grid point on the training users of the user split, with each row's
prior counted out of fold (from the other training users, learning/train.py), exactly as the
learned ranker is chosen. Test users are never read. The lite score here is the sum of the learned
ranker's lite features (plain cosine scale), within ~0.003 AUC of the served lite reranker's.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from newsrec.evaluation.split import split_users
from newsrec.learning.features import LITE_PARTS, FeatureBuilder, feature_names
from newsrec.learning.ranker import mean_auc
from newsrec.learning.train import collect
from newsrec.recall import TREND_CLIP

TREND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)
PRIOR_WEIGHTS = (0.0, 0.3, 0.5, 1.0, 2.0, 3.0)


def sweep(recommender, impressions, seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean per-impression AUC on the training users of `impressions` for each weight of each formula."""
    train = split_users(impressions, seed).train
    names = feature_names(False)
    x, y, groups, _ = collect(recommender, FeatureBuilder(names, recommender.corpus.news), train)
    column = {name: x[:, names.index(name)] for name in names}
    lite = sum(column[name] for name in LITE_PARTS)  # the lite For-you score: its parts add up to it
    prior = column["popularity"]  # out-of-fold CTR log-odds
    trending = np.clip(prior, -TREND_CLIP, TREND_CLIP)
    return {
        "first stage: cosine + w x clipped prior": {
            str(w): round(mean_auc(column["retrieval"] + w * trending, y, groups), 4) for w in TREND_WEIGHTS
        },
        "default blend: lite + w x prior": {
            str(w): round(mean_auc(lite + w * prior, y, groups), 4) for w in PRIOR_WEIGHTS
        },
        "training impressions": {"n": len(train)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", help="an ingested corpus with impressions (default: the demo logs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the user split (default: 0)")
    args = parser.parse_args(argv)
    from newsrec.config import DEMO_CORPUS, Settings
    from newsrec.evaluation.demo_logs import demo_log
    from newsrec.evaluation.offline import corpus_log
    from newsrec.pipeline import Recommender

    corpus = args.corpus or DEMO_CORPUS
    settings = Settings.from_env(corpus=corpus, embedder="lite", reranker="lite")
    log = demo_log(settings, seed=args.seed) if corpus == DEMO_CORPUS else corpus_log(settings, corpus)
    recommender = Recommender.from_settings(settings)
    print(json.dumps(sweep(recommender, log.impressions, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
