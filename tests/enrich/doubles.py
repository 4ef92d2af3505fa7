"""ScriptedBackend test doubles for the enrichment loop (responders that read the prompt, like a tiny
deterministic model). No pytest import: the overhead benchmark uses them too."""

from __future__ import annotations

import json
import re

from shelfwise.app import Shelfwise
from shelfwise.config import Settings
from shelfwise.llm.backends.scripted import ScriptedBackend
from shelfwise.store import Listing

LISTINGS = [
    Listing(id="c1", title="Brewhaus French Roast K-Cup Pods, 24 Count", category_path="Coffee"),
    Listing(id="c2", title="Brewhaus Pike Place Roast K-Cup Pods, 32 Count", category_path="Coffee"),
    Listing(id="c3", title="Brewhaus Veranda Blend K-Cup Pods, 10 Count", category_path="Coffee"),
    Listing(id="c4", title="Brewhaus Sumatra K-Cup Pods, 16 Count", category_path="Coffee"),
]


def user_text(request) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(m.content for m in request.messages if m.role == "user")


def listing_title(request) -> str:  # type: ignore[no-untyped-def]
    m = re.search(r"title: (.*)", user_text(request))
    return m.group(1).strip() if m else ""


def generator_double(request) -> str:  # type: ignore[no-untyped-def]
    """Misreads the brand as 'K-Cup' unless a learning in the prompt names the real brand."""
    props = request.json_schema["properties"]
    title = listing_title(request)
    text = user_text(request)
    out = dict.fromkeys(props)
    knows = "Brewhaus" in text.split("Listing:")[0]
    out["Brand"] = "Brewhaus" if knows else "K-Cup"
    count = re.search(r"\d+ Count", title)
    if "Net content" in out and count:
        out["Net content"] = count.group(0)
    return json.dumps(out)


def cautious_generator_double(request) -> str:  # type: ignore[no-untyped-def]
    """The panel's second model: reads the count like the first, and leaves the brand it is unsure of empty."""
    out = json.loads(generator_double(request))
    out["Brand"] = None
    return json.dumps(out)


def asked(request) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The (attribute, value) an evaluator request asks about (one question per call)."""
    question = user_text(request).rsplit("Question: ", 1)[1]
    if m := re.match(r"is (['\"])(.*)\1 a faithful product title", question):
        return "title", m.group(2)
    m = re.match(r"is (['\"])(.*)\1 the product's (.+?) \(", question)
    assert m, question
    return m.group(3), m.group(2)


def verdict(correct: bool, problem: str = "none") -> str:
    return json.dumps({"correct": correct, "problem": "none" if correct else problem})


def evaluator_double(request) -> str:  # type: ignore[no-untyped-def]
    """Critical about one thing: a brand that is really an item form."""
    attribute, value = asked(request)
    return verdict(not (attribute == "Brand" and value == "K-Cup"), "other attribute")


def supervisor_double(request) -> str:  # type: ignore[no-untyped-def]
    return json.dumps({"action": "answer", "rulings": [
        {"attribute": "Brand", "value": "Brewhaus", "why_disagreed": "K-Cup is the pod format",
         "confidence": 0.9, "learning": "In Coffee, 'K-Cup' is the Item form, not the Brand."}]})


def manager_double(request) -> str:  # type: ignore[no-untyped-def]
    return json.dumps({"action": "here", "target": None, "reason": "new rule"})


def make_app(settings: Settings, **responders) -> Shelfwise:  # type: ignore[no-untyped-def]
    sw = Shelfwise.open(settings)
    defaults = {"worker.generator": generator_double, "worker.evaluator": evaluator_double,
                "supervisor": supervisor_double, "memory.manager": manager_double}
    defaults.update(responders)
    # The panel's second generator agrees on the count and abstains on the brand unless a test scripts it.
    defaults.setdefault("worker.generator.alt", cautious_generator_double)
    sw.backends = {}
    for role, fn in defaults.items():
        backend = ScriptedBackend(model=f"double-{role}", responder=fn)
        sw.llms.set_backend(role, backend)
        sw.backends[role] = backend
    return sw
