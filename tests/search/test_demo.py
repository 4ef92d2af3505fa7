"""The search step of ``make demo`` on the small catalog (hashing embedder, the real cross-encoder)."""

from __future__ import annotations

import io

from rich.console import Console

from shelfwise.search.demo import DEMO_QUERIES, run_demo
from shelfwise.store import EventLog


def test_the_demo_step_searches_explains_reranks_and_learns(app):
    out = io.StringIO()
    run_demo(app, Console(file=out, width=200))
    text = out.getvalue()
    assert all(repr(q) in text for q in DEMO_QUERIES)
    assert "with the cross-encoder over the top 5 (ranker rrf+ce)" in text and "cross-encoder" in text
    assert "after a click + purchase on" in text
    with app.db.session() as s:  # three queries, the re-ranked one, and the two around the feedback
        assert EventLog(s).count("search_impression") == 6 and EventLog(s).count("purchase") == 1
