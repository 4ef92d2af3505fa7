"""Load order fix for native libraries (import this before ``usearch``).

usearch's compiled module carries its own copy of libstdc++'s locale facet ids. If it is loaded before any
other C++ extension has formatted a number, those ids clash and every later extension's stream formatting
breaks: LightGBM then fails with "Feature (Column_) appears more than one time" and vowpalwabbit with
"Failed to convert 0.1 to f". Formatting one number through LightGBM first pins the system library's ids.
"""

from __future__ import annotations

import sys

__all__ = ["prime_cxx_locale"]


def prime_cxx_locale() -> None:
    if "usearch.compiled" in sys.modules:  # too late to fix here; the caller imported usearch first
        return
    import lightgbm as lgb
    import numpy as np

    lgb.Dataset(np.zeros((2, 1)), np.zeros(2), feature_name=["x"], params={"verbose": -1}).construct()


prime_cxx_locale()
