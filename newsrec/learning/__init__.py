"""Learning from impression logs: exposure-aware popularity, features, the learned ranker and its store.

- popularity.py: smoothed, position-corrected CTR per item (the `popularity` scorer and the pipeline's prior)
- features.py: named (reader, candidate) features the ranker weighs
- ranker.py: logistic regression or LightGBM LambdaRank, with per-feature contributions
- store.py: versioned models under NEWSREC_HOME/models/<corpus>/
- train.py: training rows from a corpus's impressions, model choice, the user split
- stage.py: the pipeline's second stage (learned model, or reranker + prior)

The names below load on first use, so importing a submodule (the pipeline imports stage.py) pulls in
nothing else; scikit-learn, LightGBM and SciPy load inside the functions that need them.
"""

from __future__ import annotations

__all__ = ["ExposurePopularity", "LearnedRanker", "SavedModel"]

_HOMES = {
    "ExposurePopularity": "newsrec.learning.popularity",
    "LearnedRanker": "newsrec.learning.ranker",
    "SavedModel": "newsrec.learning.store",
}


def __getattr__(name: str):
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(name)
