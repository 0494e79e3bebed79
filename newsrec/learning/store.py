"""Versioned learned models on disk: NEWSREC_HOME/models/<corpus>/v<N>/ plus a LATEST pointer.

Each version holds `model.json` (kind, feature list, weights of a logistic model, the hash of the
training data, metrics, which reranker and embedder produced the features), `prior.json` (the CTR
counts of its training impressions, so it serves with the prior it learned with) and, for LightGBM,
`booster.txt`. A version is written to a temporary folder and renamed, so a reader never sees half.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from newsrec.errors import InputError
from newsrec.learning.ranker import LearnedRanker
from newsrec.types import Impression

log = logging.getLogger(__name__)

LATEST = "LATEST"


@dataclass
class SavedModel:
    ranker: LearnedRanker
    corpus: str
    version: str
    data_hash: str  # of the training impressions: ids, candidates, labels
    reranker: str  # the reranker whose score (and the embedder whose vectors) the features were built from
    embedder: str
    metrics: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # anything else worth keeping (split seed, sizes, choice)
    prior: dict = field(default_factory=dict)  # ExposurePopularity.to_dict() of the training impressions

    @property
    def model_id(self) -> str:
        """Stable id of this exact model, e.g. for cache keys and the page: corpus/version/kind."""
        return f"{self.corpus}/{self.version}/{self.ranker.kind}"


def data_hash(impressions: Iterable[Impression]) -> str:
    digest = hashlib.sha256()
    for impression in impressions:
        digest.update(
            json.dumps([impression.id, impression.user_id, impression.candidates, impression.labels]).encode()
        )
    return digest.hexdigest()[:16]


def models_dir(home: Path, corpus: str) -> Path:
    return Path(home) / "models" / corpus


def save(home: Path, model: SavedModel) -> Path:
    """Write `model` as the next version of its corpus and point LATEST at it; returns its folder."""
    root = models_dir(home, model.corpus)
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[1:]) for p in root.glob("v*") if p.is_dir() and p.name[1:].isdigit()]
    model.version = f"v{max(numbers, default=0) + 1}"
    staging = root / f".{model.version}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    payload = {
        "corpus": model.corpus,
        "version": model.version,
        "model_id": model.model_id,
        "data_hash": model.data_hash,
        "reranker": model.reranker,
        "embedder": model.embedder,
        "metrics": model.metrics,
        "meta": model.meta,
        "ranker": json.loads(model.ranker.to_json()),
    }
    (staging / "model.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    if model.prior:
        (staging / "prior.json").write_text(json.dumps(model.prior), encoding="utf-8")
    if model.ranker.booster_text:
        (staging / "booster.txt").write_text(model.ranker.booster_text, encoding="utf-8")
    target = root / model.version
    staging.rename(target)
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(model.version, encoding="utf-8")
    os.replace(pointer, root / LATEST)
    log.info("saved model %s to %s", model.model_id, target)
    return target


def load(home: Path, corpus: str, version: str | None = None) -> SavedModel | None:
    """The given (or latest) version of `corpus`'s model; None when it has none."""
    root = models_dir(home, corpus)
    if version is None:
        pointer = root / LATEST
        if not pointer.is_file():
            return None
        try:
            version = pointer.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(
                f"{pointer}: unreadable ({type(error).__name__}); retrain with `python -m newsrec train`"
            ) from None
    folder = root / version
    if not (folder / "model.json").is_file():
        raise InputError(f"no model {version!r} for corpus {corpus!r} under {root}")
    try:
        payload = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        booster = (folder / "booster.txt").read_text(encoding="utf-8") if (folder / "booster.txt").is_file() else ""
        ranker = LearnedRanker.from_files(json.dumps(payload["ranker"]), booster)
        prior_file = folder / "prior.json"
        prior = json.loads(prior_file.read_text(encoding="utf-8")) if prior_file.is_file() else {}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(
            f"{folder / 'model.json'}: unreadable model ({error}); retrain with `python -m newsrec train`"
        ) from None
    return SavedModel(
        ranker=ranker,
        corpus=payload["corpus"],
        version=payload["version"],
        data_hash=payload["data_hash"],
        reranker=payload["reranker"],
        embedder=payload["embedder"],
        metrics=payload.get("metrics", {}),
        meta=payload.get("meta", {}),
        prior=prior,
    )
