"""The generator panel: two different models vote per attribute; where they clash the supervisor rules,
where they agree nothing else is asked."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from shelfwise.enrich import EnrichmentLoop, LoopConfig
from shelfwise.enrich.supervisor import RULINGS_ONLY_PROMPT_VERSION
from shelfwise.store import Catalog
from shelfwise.store.models import ExtractedValue
from tests.enrich.conftest import LISTINGS, asked, generator_double, listing_title, make_app


def _brand_reader(request) -> str:  # type: ignore[no-untyped-def]
    """A second scripted model that reads the brand correctly from the title's first word."""
    out = json.loads(generator_double(request))
    out["Brand"] = listing_title(request).split()[0]
    return json.dumps(out)


def _app(settings, **responders):  # type: ignore[no-untyped-def]
    sw = make_app(settings, **responders)
    with sw.db.session() as s:
        Catalog(s).ingest(list(enumerate(LISTINGS)))
    return sw


def test_panel_clash_goes_to_the_supervisor_and_names_both_workers(enrich_settings):
    sw = _app(enrich_settings, **{"worker.generator.alt": _brand_reader})
    loop = EnrichmentLoop(sw, LoopConfig(compiled_worker=False, learn=False, supervisor_budget=0.0))
    results = []
    loop.run_batch(["c1"], on_product=results.append)
    [r] = results
    assert r.disagreements == ["Brand"] and r.supervisor_calls == 1
    assert r.values["Brand"] == "Brewhaus" and r.statuses["Brand"] == "supervised"
    supervisor_prompt = "\n".join(m.content for m in sw.backends["supervisor"].requests[0].messages)
    assert "generator='K-Cup'" in supervisor_prompt and "generator.alt='Brewhaus'" in supervisor_prompt
    assert "\"learning\"" not in supervisor_prompt and "reusable learning" not in supervisor_prompt, \
        "a frozen loop would discard learnings: it does not ask for them"
    with sw.db.session() as s:
        stored = s.scalars(select(ExtractedValue).where(ExtractedValue.product_id == "c1",
                                                        ExtractedValue.attribute == "Brand")).one()
        assert stored.prompt_version == RULINGS_ONLY_PROMPT_VERSION
    # Both generators saw the listing; the net content they agree on was stored without the evaluator.
    assert len(sw.backends["worker.generator"].requests) == len(sw.backends["worker.generator.alt"].requests) == 1
    assert r.statuses["Net content"] == "agreed" and not sw.backends["worker.evaluator"].requests
    sw.close()


def test_panel_agreement_needs_no_evaluator_or_supervisor(enrich_settings):
    sw = _app(enrich_settings, **{"worker.generator": _brand_reader, "worker.generator.alt": _brand_reader})
    # The compiled worker stays in the panel: it knows nothing yet, and its silence is no vote against.
    loop = EnrichmentLoop(sw, LoopConfig(learn=False, supervisor_budget=0.0))
    report = loop.run_batch(["c1", "c2"])
    assert report.disagreements == 0 and report.supervisor_calls == 0
    assert not sw.backends["worker.evaluator"].requests and not sw.backends["supervisor"].requests
    sw.close()


def test_one_generator_failing_leaves_the_other_ones_values_to_the_evaluator(enrich_settings):
    sw = _app(enrich_settings, **{"worker.generator": _brand_reader,
                                  "worker.generator.alt": lambda _r: "not json at all"})
    loop = EnrichmentLoop(sw, LoopConfig(compiled_worker=False, learn=False, supervisor_budget=0.0))
    results = []
    loop.run_batch(["c1"], on_product=results.append)
    assert results[0].values["Brand"] == "Brewhaus"
    assert sw.backends["worker.evaluator"].requests, "a single-source value is checked"
    sw.close()


def test_generator_roles_must_be_distinct():
    with pytest.raises(ValidationError, match="repeats a role"):
        LoopConfig(generator_roles=("worker.generator", "worker.generator"))
    assert LoopConfig().generator_roles == ("worker.generator", "worker.generator.alt")
    with pytest.raises(ValidationError, match="llm_worker"):  # removed: an empty panel says the same
        LoopConfig(llm_worker=False)


def test_a_value_agreed_for_several_attributes_goes_to_the_evaluator(enrich_settings):
    def count_everywhere(request):  # type: ignore[no-untyped-def]
        out = json.loads(_brand_reader(request))
        out["Pack size"] = out["Net content"]
        return json.dumps(out)

    sw = _app(enrich_settings, **{"worker.generator": count_everywhere, "worker.generator.alt": count_everywhere})
    loop = EnrichmentLoop(sw, LoopConfig(learn=False, supervisor_budget=0.0))
    loop.run_batch(["c1"])
    questions = [asked(r) for r in sw.backends["worker.evaluator"].requests]  # one call per question
    assert sorted(questions) == [("Net content", "24 Count"), ("Pack size", "24 Count")], questions
    sw.close()
