"""Every public module's ``__all__`` names things that exist, and the error messages carry a fix."""

import importlib

import pytest

from shelfwise import errors

PUBLIC_MODULES = ["shelfwise", "shelfwise.errors", "shelfwise.config", "shelfwise.contracts", "shelfwise.store",
                  "shelfwise.llm", "shelfwise.observability", "shelfwise.demo", "shelfwise.api", "shelfwise.graph", "shelfwise.search"]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_names_exist(name):
    module = importlib.import_module(name)
    assert module.__all__, f"{name} has an empty __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"


def test_every_error_class_is_drawn_in_the_hierarchy_and_derives_from_the_base():
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.ShelfwiseError)
        assert name in doc, f"{name} is missing from the hierarchy drawing in errors.py"


def test_messages_name_the_fix():
    err = errors.UnknownNameError("role", "nope", ["b", "a"])
    assert str(err) == "unknown role 'nope' — fix: use one of: a, b"
    assert "fix:" in str(errors.NotFoundError("product", "p9"))
    assert "line" not in str(errors.RowError("f.jsonl", 7, "bad")) and "f.jsonl:7" in str(errors.RowError("f.jsonl", 7, "bad"))
