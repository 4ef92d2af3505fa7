from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from shelfwise.errors import InputError
from shelfwise.search.learning import validate_judgements
from shelfwise.store import EventLog
from shelfwise.store.events import SearchImpression


def test_learning_skips_and_logs_an_impression_no_search_could_have_made(service, app, caplog):
    with app.db.session() as s:
        bad = EventLog(s).append(SearchImpression(query="!!!", decision_id="forged", product_ids=["p-beans"],
                                                  propensity=0.5))
    for query in ["espresso", "running shoes"]:
        result = service.search(query, k=3)
        service.feedback("click", result.hits[0].product_id, result.decision_id)
    with caplog.at_level(logging.WARNING, logger="shelfwise.search"):
        report = service.learn(feedback_window=timedelta(0))
    assert report["ranker_queries"] == 2
    assert f"search_impression event {bad}" in caplog.text


@pytest.mark.parametrize("data", [[1, 2], {"q": {"p-beans": "high"}}, {"q": ["p1"]}, {"q": {"p-beans": 7}},
                                  {"q": {"p-beans": -1}}, {"q": {"p-beans": True}}, "text"])
def test_malformed_judgements_name_the_expected_format(data):
    with pytest.raises(InputError, match=r"integer labels 0\.\.3"):
        validate_judgements(data)


def test_a_judged_query_that_is_not_searchable_is_named(service):
    with pytest.raises(InputError, match="judged query ''"):
        service.train_ranker({"": {"p-beans": 3, "p-grinder": 1}, "tent": {"p-tent": 3, "p-bag": 0}})
