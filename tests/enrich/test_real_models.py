"""The loop on the real embedded models (slow: they run in CI, each well under two minutes on an idle
2-core machine)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shelfwise.app import Shelfwise
from shelfwise.config import DEFAULT_ROLES, EmbedderConfig, Settings
from shelfwise.enrich import EnrichmentLoop, LoopConfig
from shelfwise.enrich.agreement import vote
from shelfwise.enrich.schemas import PROBLEMS, builtin_schemas
from shelfwise.enrich.supervisor import Supervisor
from shelfwise.enrich.workers import EVALUATOR_PROMPT_VERSION, LLMEvaluator
from shelfwise.store import Catalog, Listing
from shelfwise.store.models import ExtractedValue, LLMCall

pytestmark = pytest.mark.slow
TITLE = "Folgers Classic Roast Ground Coffee, Medium Roast, 25.9 Ounce Canister"


@pytest.fixture
def real_sw(tmp_path):  # type: ignore[no-untyped-def]
    roles = {r: c.model_copy(update={"timeout_s": 600.0}) for r, c in DEFAULT_ROLES.items()}
    sw = Shelfwise.open(Settings(home=tmp_path / "home", roles=roles, embedder=EmbedderConfig(backend="hashing")))
    yield sw
    sw.close()


def test_one_product_through_the_real_loop(real_sw):
    with real_sw.db.session() as s:
        Catalog(s).upsert(Listing(id="f1", title=TITLE, category_path="Coffee"))
    report = EnrichmentLoop(real_sw, LoopConfig(supervisor_steps=1)).run_batch(["f1"])
    assert report.products == 1 and report.tokens > 0
    with real_sw.db.session() as s:
        rows = list(s.scalars(select(ExtractedValue).where(ExtractedValue.product_id == "f1",
                                                           ExtractedValue.is_current.is_(True))))
    assert rows, "the real loop stored at least one value"
    for row in rows:
        assert row.value.lower() in TITLE.lower(), "stored values are readings of the listing"
        assert row.model and row.prompt_version


def test_real_supervisor_rules_on_a_dispute(real_sw):
    schema = {x.category_path: x for x in builtin_schemas()}["Coffee"]
    listing = Listing(id="f2", title=TITLE, category_path="Coffee")
    dispute = vote("Roast type", [("llm", "Classic Roast"), ("kb", "Medium Roast")])
    sup = Supervisor(real_sw.llm("supervisor"), max_steps=1)
    out = sup.resolve(listing, schema, [dispute], tools={})
    assert out.steps == 1 and out.tokens > 0
    ruling = out.rulings.get("Roast type")
    assert ruling is not None and 0.0 <= ruling.confidence <= 1.0


def test_real_evaluator_answers_each_question_in_its_own_call(real_sw):
    schema = {x.category_path: x for x in builtin_schemas()}["Coffee"]
    listing = Listing(id="f3", title=TITLE, category_path="Coffee")
    evaluator = LLMEvaluator(real_sw.llm("worker.evaluator"))
    values = {"Brand": "Folgers", "Roast type": "Medium Roast", "Flavor": "Hazelnut"}
    out = evaluator.check(listing, schema, values)
    assert out.checked == list(values) and out.prompt_version == EVALUATOR_PROMPT_VERSION
    assert out.flags["Flavor"] == "the value does not occur in the listing"
    assert set(out.flags) - {"Flavor"} <= {"Brand", "Roast type"}
    assert all(reason in PROBLEMS.values() for a, reason in out.flags.items() if a != "Flavor")
    real_sw.recorder.flush()
    with real_sw.db.session() as s:
        calls = s.scalars(select(LLMCall).where(LLMCall.role == "worker.evaluator")).all()
    assert len(calls) == 2 and all(c.ok for c in calls), "one call per question the listing could answer"
