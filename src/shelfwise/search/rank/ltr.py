"""LambdaMART ranking (LightGBM ``lambdarank``) with the ESCI gains built into its NDCG objective."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import lightgbm as lgb
import numpy as np

from ...errors import IndexStateError, InputError, NotTrainedError
from .features import FEATURE_NAMES

__all__ = ["GAINS", "LTRRanker"]

# Integer label -> gain: Irrelevant 0, Complement 0.01, Substitute 0.1, Exact 1 (the ESCI paper's gains).
GAINS: tuple[float, ...] = (0.0, 0.01, 0.1, 1.0)


class LTRRanker:
    def __init__(self, n_estimators: int = 300, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_child_samples: int = 20, label_gain: Sequence[float] = GAINS, seed: int = 0,
                 n_jobs: int = 1) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.label_gain = tuple(label_gain)
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, X: np.ndarray, y: np.ndarray, groups: Sequence[int], sample_weight: np.ndarray | None = None
            ) -> LTRRanker:
        """``groups``: candidate counts per query, in row order; ``y``: integer labels 0..len(label_gain)-1."""
        X, y = np.asarray(X, np.float32), np.asarray(y, np.int32)
        if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES) or len(X) != len(y) or sum(groups) != len(y):
            raise InputError(f"ranker training data has shape {X.shape}, {len(y)} labels, groups summing to "
                             f"{sum(groups)}", fix=f"pass {len(FEATURE_NAMES)} features per row, one label each")
        if y.min(initial=0) < 0 or y.max(initial=0) >= len(self.label_gain):
            raise InputError("ranker labels out of range", fix=f"use integers 0..{len(self.label_gain) - 1}")
        params = {
            "objective": "lambdarank", "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples, "label_gain": list(self.label_gain), "seed": self.seed,
            "num_threads": self.n_jobs, "verbose": -1, "lambdarank_truncation_level": 20,
            "feature_pre_filter": False,
            # Same data -> same model in any run: LightGBM otherwise picks row- or column-wise histograms by
            # timing a test at each fit (a load-dependent choice); one thread and a seed do the rest.
            "force_col_wise": True, "deterministic": True,
        }
        data = lgb.Dataset(X, y, group=list(groups), weight=sample_weight, feature_name=list(FEATURE_NAMES),
                           free_raw_data=True)
        self.booster_ = lgb.train(params, data, num_boost_round=self.n_estimators)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "booster_"):
            raise NotTrainedError("the ranker is not trained", fix="run `shelfwise search-learn` (needs logged clicks) "
                                  "or `shelfwise search-learn --judgements FILE`")
        if len(X) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.booster_.predict(np.asarray(X, np.float32), num_threads=self.n_jobs)

    def feature_importance(self) -> dict[str, float]:
        gains = self.booster_.feature_importance("gain")
        return dict(sorted(zip(FEATURE_NAMES, map(float, gains), strict=True), key=lambda kv: -kv[1]))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"features": list(FEATURE_NAMES), "model": self.booster_.model_to_string()}))
        tmp.replace(path)

    def load(self, path: Path) -> LTRRanker:
        try:
            data = json.loads(path.read_text())
            if data["features"] != list(FEATURE_NAMES):
                raise ValueError("feature list changed since the ranker was trained")
            self.booster_ = lgb.Booster(model_str=data["model"])
        except FileNotFoundError:
            raise NotTrainedError(f"no ranker model at {path}",
                                  fix="run `shelfwise search-learn` (or with `--judgements FILE`)") from None
        except Exception as exc:
            raise IndexStateError(f"ranker model {path} is unreadable ({exc})",
                                  fix="retrain it with `shelfwise search-learn` (from logged clicks) or "
                                      "`shelfwise search-learn --judgements FILE`, or delete the file to rank by "
                                      "fusion until a ranker is trained") from exc
        return self
