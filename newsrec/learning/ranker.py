"""The learned ranker: logistic regression (scikit-learn) or LambdaRank trees (LightGBM) over named features.

Both give a score per candidate and its per-feature contributions that add up to it: for the logistic
model coef_j * (x_j - mean_j) / std_j plus a base (intercept), for LightGBM its SHAP values
(`pred_contrib`) plus the expected value. Contributions are relative to an average training candidate,
which is what "why is this card here" asks.

The logistic model is stored as plain JSON numbers and the trees as LightGBM's text format: loading a
model never unpickles anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from newsrec.errors import InputError

KINDS = ("logistic", "lightgbm")
BASE = "base"  # name of the constant part in contributions


@dataclass
class LearnedRanker:
    kind: str
    features: list[str]
    coef: list[float] = field(default_factory=list)  # logistic: weights of the standardised features
    mean: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    intercept: float = 0.0
    booster_text: str = ""  # lightgbm: Booster.model_to_string()
    _booster: object = field(default=None, repr=False, compare=False)

    def _matrix(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise InputError(f"expected a matrix with {len(self.features)} feature columns, got shape {x.shape}")
        return x

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(N, F + 1): per-feature parts and, last, the base; each row sums to `predict`."""
        x = self._matrix(x)
        if self.kind == "logistic":
            z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
            parts = z * np.asarray(self.coef)
            return np.hstack([parts, np.full((len(x), 1), self.intercept)])
        return np.asarray(self.booster().predict(x, pred_contrib=True)).reshape(len(x), len(self.features) + 1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.contributions(x).sum(axis=1)

    def named(self, x: np.ndarray) -> list[dict[str, float]]:
        names = [*self.features, BASE]
        return [dict(zip(names, map(float, row), strict=True)) for row in self.contributions(x)]

    def booster(self):
        if self._booster is None:
            import lightgbm

            self._booster = lightgbm.Booster(model_str=self.booster_text)
        return self._booster

    def to_json(self) -> str:
        payload = {k: getattr(self, k) for k in ("kind", "features", "coef", "mean", "scale", "intercept")}
        return json.dumps(payload)

    @classmethod
    def from_files(cls, params_json: str, booster_text: str = "") -> LearnedRanker:
        params = json.loads(params_json)
        if not isinstance(params, dict) or params.get("kind") not in KINDS:
            kind = params.get("kind") if isinstance(params, dict) else params
            raise InputError(f"unknown model kind {kind!r}; choose from: {', '.join(KINDS)}")
        _check_types(params)
        return cls(**params, booster_text=booster_text)


def _check_types(params: dict) -> None:
    """Valid JSON of the wrong shape (string weights, a list too short) fails here, not in numpy at scoring time."""
    features = params.get("features")
    if not isinstance(features, list) or not all(isinstance(name, str) for name in features):
        raise InputError("`features` must be a list of feature names")
    unknown = sorted(set(params) - {"kind", "features", "coef", "mean", "scale", "intercept"})
    if unknown:
        raise InputError(f"unknown fields {unknown}")

    def number(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)

    if not number(params.get("intercept", 0.0)):
        raise InputError(f"`intercept` must be a finite number, got {params.get('intercept')!r}")
    if params["kind"] == "logistic":
        for name in ("coef", "mean", "scale"):
            values = params.get(name)
            if not isinstance(values, list) or len(values) != len(features) or not all(map(number, values)):
                raise InputError(f"`{name}` must be {len(features)} finite numbers, one per feature")


def fit(kind: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray, features: Sequence[str]) -> LearnedRanker:
    """Fit one model on rows `x` (N, F) with click labels `y` (N,); `groups` (N,) = impression of each row."""
    if kind not in KINDS:
        raise InputError(f"unknown model kind {kind!r}; choose from: {', '.join(KINDS)}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise InputError("the training impressions need both clicked and unclicked candidates")
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)  # a constant feature keeps weight 0 and scale 1
        model = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y)
        return LearnedRanker(
            kind=kind,
            features=list(features),
            coef=[float(c) for c in model.coef_[0]],
            mean=[float(m) for m in mean],
            scale=[float(s) for s in scale],
            intercept=float(model.intercept_[0]),
        )
    import lightgbm

    order = np.argsort(groups, kind="stable")  # LambdaRank wants each impression's rows together
    _, sizes = np.unique(groups[order], return_counts=True)
    params = {
        "objective": "lambdarank",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.9,
        "lambdarank_truncation_level": 20,
        "verbose": -1,
        "seed": 0,
        "num_threads": 2,
        "deterministic": True,
    }
    data = lightgbm.Dataset(x[order], y[order], group=sizes, feature_name=list(features))
    booster = lightgbm.train(params, data, num_boost_round=200)
    return LearnedRanker(kind=kind, features=list(features), booster_text=booster.model_to_string())


def mean_auc(scores: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Mean per-impression AUC, the MIND way (impressions without both labels skipped).

    scikit-learn's roc_auc_score counts ties one half, as newsrec/evaluation/metrics.py's `auc` does; the
    learning layer uses it so that it never imports the evaluation layer above it."""
    from sklearn.metrics import roc_auc_score

    values = []
    for group in np.unique(groups):
        rows = groups == group
        labels = np.asarray(y[rows]) > 0
        if labels.all() or not labels.any():
            continue
        values.append(float(roc_auc_score(labels, scores[rows])))
    return float(np.mean(values)) if values else float("nan")
