"""Learning from impression logs: exposure-aware popularity, features, the learned ranker and its store.

- popularity.py: smoothed, position-corrected CTR per item (the `popularity` scorer and the pipeline's prior)
- features.py: named (reader, candidate) features the ranker weighs
- ranker.py: logistic regression or LightGBM LambdaRank, with per-feature contributions
- store.py: versioned models under NEWSREC_HOME/models/<corpus>/
- train.py: training rows from a corpus's impressions, model choice, the user split
- stage.py: the pipeline's second stage (learned model, or reranker + prior)
"""

from __future__ import annotations

from newsrec.learning.popularity import ExposurePopularity
from newsrec.learning.ranker import LearnedRanker
from newsrec.learning.store import SavedModel

__all__ = ["ExposurePopularity", "LearnedRanker", "SavedModel"]
