import importlib

import pytest

MODULES = ["shelfwise.enrich", "shelfwise.enrich.agreement", "shelfwise.enrich.compiled", "shelfwise.enrich.drafts",
           "shelfwise.enrich.health", "shelfwise.enrich.models", "shelfwise.enrich.product",
           "shelfwise.enrich.review", "shelfwise.enrich.runner", "shelfwise.enrich.schemas",
           "shelfwise.enrich.stats", "shelfwise.enrich.supervisor", "shelfwise.enrich.titles",
           "shelfwise.enrich.tools", "shelfwise.enrich.workers", "shelfwise.enrich.demo", "shelfwise.cli.enrich"]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name):
    module = importlib.import_module(name)
    assert module.__all__
    assert not [n for n in module.__all__ if not hasattr(module, n)]
