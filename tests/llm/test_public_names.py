"""Every name the LLM modules export really exists, and the package imports without the optional
llama.cpp / SDK dependencies being touched."""

import importlib
import subprocess
import sys

import pytest

MODULES = ["shelfwise.llm", "shelfwise.llm.base", "shelfwise.llm.client", "shelfwise.llm.registry",
           "shelfwise.llm.text", "shelfwise.llm.models", "shelfwise.llm.embed", "shelfwise.llm.backends",
           "shelfwise.llm.backends.scripted"]


@pytest.mark.parametrize("name", MODULES)
def test_every_exported_name_imports(name):
    module = importlib.import_module(name)
    assert module.__all__ and len(set(module.__all__)) == len(module.__all__)
    for attr in module.__all__:
        exec(f"from {name} import {attr}", {})  # noqa: S102 - the point is the import statement itself


def test_local_backend_exports():
    pytest.importorskip("llama_cpp")
    module = importlib.import_module("shelfwise.llm.backends.local")
    assert all(hasattr(module, n) for n in module.__all__)


def test_importing_the_package_does_not_load_heavy_backends():
    code = ("import sys, shelfwise.llm; "
            "print(sorted(m for m in ('llama_cpp', 'torch', 'sentence_transformers', 'anthropic', 'boto3') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
