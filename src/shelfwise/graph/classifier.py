"""Plausibility and typicality classifier on embedder features (head, tail, their product, cosine,
relation one-hot) with a scikit-learn model, calibrated; trained on the resolved annotations.

Follows the scikit-learn estimator contract: ``__init__`` stores params, ``fit`` returns self, learned
attributes end in ``_``. ``score`` on an unfitted model raises ``NotTrainedError`` naming the command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np

from ..errors import InputError, NotTrainedError, UnknownNameError
from .behaviour import ProductInfo
from .relations import SEED_RELATIONS

__all__ = ["MODELS", "TRAIN_COMMAND", "IntentClassifier", "classifier_path", "head_text", "load_classifier"]

TRAIN_COMMAND = "shelfwise graph train"


def _logreg() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced")


def _lightgbm() -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=5,
                          verbose=-1, n_jobs=1)


MODELS = {"logreg": _logreg, "lightgbm": _lightgbm}


def head_text(query: str | None, product_ids: list[str] | tuple[str, ...], products: dict[str, ProductInfo]) -> str:
    titles = [products[p].title for p in product_ids if p in products]
    return " ; ".join(([f"search: {query}"] if query else []) + titles)


class IntentClassifier:
    def __init__(self, embedder: Any = None, model: str = "logreg", calibration: str = "sigmoid",
                 threshold: float = 0.5) -> None:
        self.embedder = embedder
        self.model = model
        self.calibration = calibration
        self.threshold = threshold

    def _embed_unique(self, texts: list[str]) -> np.ndarray:
        # Heads repeat across a pair's candidates: embed each distinct text once.
        unique = list(dict.fromkeys(texts))
        vecs = np.asarray(self.embedder.embed(unique), dtype=np.float32)
        index = {text: i for i, text in enumerate(unique)}
        return vecs[[index[x] for x in texts]]

    # -- features -------------------------------------------------------------------------------
    def _features(self, heads: list[str], relations: list[str], tails: list[str]) -> np.ndarray:
        if self.embedder is None:
            raise NotTrainedError("the intent classifier has no embedder", fix="pass sw.embedder")
        h, t = self._embed_unique(heads), self._embed_unique(tails)
        rel_names = sorted(SEED_RELATIONS)
        onehot = np.zeros((len(relations), len(rel_names) + 1), dtype=np.float32)
        for i, r in enumerate(relations):
            onehot[i, rel_names.index(r) if r in rel_names else len(rel_names)] = 1.0
        cos = np.sum(h * t, axis=1, keepdims=True)
        return np.hstack([h, t, h * t, cos, onehot])

    def _fit_one(self, X: np.ndarray, y: np.ndarray) -> Any:
        if self.model not in MODELS:
            raise UnknownNameError("classifier model", self.model, list(MODELS))
        if len(set(y.tolist())) < 2:
            raise InputError("the annotations hold only one answer (all yes or all no)",
                             fix="annotate more candidates, including some that should be rejected")
        base = MODELS[self.model]()
        minority = int(min(np.sum(y == 0), np.sum(y == 1)))
        if self.calibration == "none" or minority < 3:
            return base.fit(X, y)  # too few examples for held-out calibration folds
        from sklearn.calibration import CalibratedClassifierCV

        return CalibratedClassifierCV(base, method=self.calibration, cv=min(3, minority)).fit(X, y)

    # -- estimator API ----------------------------------------------------------------------------
    def fit(self, heads: list[str], relations: list[str], tails: list[str], plausible: list[int],
            typical: list[int] | None = None) -> IntentClassifier:
        if not (len(heads) == len(relations) == len(tails) == len(plausible)) or not heads:
            raise InputError("training rows are empty or of unequal length", fix="pass one label per row")
        X = self._features(heads, relations, tails)
        self.plausible_model_ = self._fit_one(X, np.asarray(plausible, dtype=int))
        typ = np.asarray(typical if typical is not None else plausible, dtype=int)
        self.typical_model_ = self._fit_one(X, typ) if len(set(typ.tolist())) > 1 else self.plausible_model_
        self.n_train_ = len(heads)
        self.embedder_name_ = getattr(self.embedder, "name", "")
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, heads: list[str], relations: list[str], tails: list[str]) -> np.ndarray:
        """(n, 2): calibrated P(plausible), P(typical)."""
        if not hasattr(self, "plausible_model_"):
            raise NotTrainedError("the intent classifier is not trained", fix=f"run `{TRAIN_COMMAND}`")
        if not heads:
            return np.zeros((0, 2))
        X = self._features(heads, relations, tails)
        return np.column_stack([self.plausible_model_.predict_proba(X)[:, 1],
                                self.typical_model_.predict_proba(X)[:, 1]])

    def predict(self, heads: list[str], relations: list[str], tails: list[str]) -> np.ndarray:
        return (self.predict_proba(heads, relations, tails) >= self.threshold).astype(int)

    def score(self, cands: list[Any], products: dict[str, ProductInfo]) -> list[tuple[float, float]]:
        """Scores for cascade candidates (anything with query, product_ids, relation, tail)."""
        heads = [head_text(c.query, c.product_ids, products) for c in cands]
        proba = self.predict_proba(heads, [c.relation for c in cands], [c.tail for c in cands])
        return [(float(p), float(t)) for p, t in proba]

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        if not hasattr(self, "plausible_model_"):
            raise NotTrainedError("cannot save an untrained classifier", fix=f"run `{TRAIN_COMMAND}`")
        path.parent.mkdir(parents=True, exist_ok=True)
        embedder, self.embedder = self.embedder, None
        try:
            joblib.dump(self, path)
        finally:
            self.embedder = embedder
        return path


def classifier_path(home: Path) -> Path:
    return Path(home) / "graph" / "intent_classifier.joblib"


def load_classifier(sw: Any, *, required: bool = True) -> IntentClassifier | None:
    path = classifier_path(sw.settings.home)
    if not path.exists():
        if required:
            raise NotTrainedError(f"no trained intent classifier at {path}",
                                  fix=f"annotate candidates (`shelfwise graph annotate`), then run `{TRAIN_COMMAND}`")
        return None
    clf: IntentClassifier = joblib.load(path)
    clf.embedder = sw.embedder
    dim = getattr(sw.embedder, "dim", None)
    n_in = getattr(clf, "n_features_in_", None)
    if dim is not None and n_in is not None and n_in != 3 * dim + 1 + len(SEED_RELATIONS) + 1:
        raise NotTrainedError(f"the classifier at {path} was trained with another embedder "
                              f"({clf.embedder_name_!r})", fix=f"retrain it: `{TRAIN_COMMAND}`")
    return clf
