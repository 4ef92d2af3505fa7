import importlib

import pytest

PACKAGES = ["shelfwise.search", "shelfwise.search.retrievers", "shelfwise.search.bandit", "shelfwise.search.rank"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_exists(name):
    module = importlib.import_module(name)
    assert module.__all__ and len(set(module.__all__)) == len(module.__all__)
    for attr in module.__all__:
        assert getattr(module, attr) is not None, attr
