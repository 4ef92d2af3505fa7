"""One product through the loop, in two phases so no database write lock is held during a model call
(SQLite has one writer; the prompt cache and call accounting write from other connections):

1. ``plan_product`` reads and calls the models (workers, evaluator, supervisor) and collects writes;
2. the runner places the learnings (each in its own short transaction: the memory manager may call its
   model), then ``Plan.apply`` writes values, events, review items and counters in the transaction that
   also marks the product done, so a crash keeps nothing half-done."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ..errors import LLMError
from ..store.catalog import AttributeSchema, Listing
from ..store.events import Disagreement, Event, EventLog, Extraction, SupervisorRuling
from .agreement import AttributeDecision, shared_values, vote
from .bulk import store_values
from .compiled import PATTERN_PREFIX, CompiledExtractor
from .drafts import is_worked, value_drafts, worked_draft
from .escalation import uncertainty
from .kb.scope import is_ancestor, path_key
from .kb.types import Evidence, LearningDraft
from .review import open_review
from .screening import REJECT_PREFIX, Screen, screen_values
from .tools import build_tools
from .trust import Verdict, in_sample
from .workers import WorkerOutput, format_learnings, worked_examples_block

__all__ = ["KnowledgeCache", "Plan", "ProductResult", "apply_plans", "plan_product", "store_value"]

log = logging.getLogger("shelfwise.enrich")


class ProductResult(BaseModel):
    product_id: str
    category_path: str
    values: dict[str, str | None] = Field(default_factory=dict)
    statuses: dict[str, str] = Field(default_factory=dict)  # attribute -> agreed|supervised|review|empty
    disagreements: list[str] = Field(default_factory=list)
    supervisor_calls: int = 0
    reviews: int = 0
    tokens: int = 0
    seconds: float = 0.0
    learnings: list[list[Any]] = Field(default_factory=list)  # [learning_id, attribute, action]
    injected: list[int] = Field(default_factory=list)
    uncertainty: float = 0.0  # see escalation.py
    escalated: list[str] = Field(default_factory=list)  # attributes sent to the supervisor without a dispute
    trusted: list[str] = Field(default_factory=list)  # disputes settled by the track record (trust.py)
    # nested values read as one by a learned span convention (trust.py): agreed, not disputed
    conventions: list[str] = Field(default_factory=list)
    screened: list[str] = Field(default_factory=list)  # worker values dropped before the vote (screening.py)
    benched: list[str] = Field(default_factory=list)  # generators left out by their track record (trust.py)
    audited: list[str] = Field(default_factory=list)  # settled attributes also sent to review (audit_settled)
    listing_version: int | None = None  # the product version the loop read (``shelfwise enrich`` re-runs newer)


def store_value(session: Session, product_id: str, attribute: str, value: str | None, *, status: str, model: str,
                prompt_version: str, learning_ids: list[int], batch_id: str | None,
                confidence: float | None = None) -> None:
    """Supersede the current value and append the new one with its trace (model, prompt, learnings): the
    one-value case of ``apply_plans``'s set-at-a-time write."""
    event_id = EventLog(session).append(Extraction(
        product_id=product_id, attribute=attribute, value=value, status=status, model=model,
        prompt_version=prompt_version, learning_ids=learning_ids, batch_id=batch_id))
    store_values(session, [{"product_id": product_id, "attribute": attribute, "value": value, "status": status,
                            "confidence": confidence, "model": model, "prompt_version": prompt_version,
                            "learning_ids": learning_ids, "batch_id": batch_id, "event_id": event_id}])


class KnowledgeCache:
    """What one category's workers read from the knowledge base (relevant learnings, normalisers, patterns,
    the screen of confirmed and rejected values), cached between products. The loop is the only writer
    during a batch and drops a category's entry whenever it adds a learning there; ``clear()`` at each
    batch start picks up experts' edits."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[list, dict[str, dict[str, str]], dict[str, list[str]], Screen]] = {}

    def clear(self, category: str | None = None) -> None:
        if category is None:
            self._data.clear()
        else:
            self._data.pop(category, None)

    def get(self, kb: Any, category: str, names: list[str], cfg: Any) -> tuple[list, dict, dict, Screen]:
        if category not in self._data:
            # Rejections are enforced by the screen; in a prompt they would only spend the learnings' budget.
            learnings = kb.relevant(category, names, max_items=cfg.max_learnings, max_tokens=cfg.max_learning_tokens,
                                    rules_only=(REJECT_PREFIX,))
            synonyms = {a: kb.normalizers(category, a) for a in names}
            patterns: dict[str, list[str]] = {a: [] for a in names}
            rejected: dict[str, list[str]] = {a: [] for a in names}
            cat, known = path_key(category), {x.id for x in learnings}
            for lv in kb.list(status="active"):
                if not is_ancestor(path_key(lv.category_path), cat):
                    continue  # another branch of the category tree ('Coffee' does not hold 'Coffee Makers')
                if lv.attribute in patterns:
                    patterns[lv.attribute] += [e[len(PATTERN_PREFIX):].strip() for e in lv.examples
                                               if e.startswith(PATTERN_PREFIX)]
                    rejected[lv.attribute] += [e[len(REJECT_PREFIX):].strip() for e in lv.examples
                                               if e.startswith(REJECT_PREFIX)]
                if lv.attribute is None and lv.id not in known and is_worked(lv):
                    learnings.append(lv)  # worked examples are picked per listing, outside the token budget
                    known.add(lv.id)
            screen = Screen.learn({a: set(synonyms[a].values()) for a in names}, rejected) if cfg.screen else Screen()
            self._data[category] = (learnings, synonyms, patterns, screen)
        return self._data[category]


def _run_workers(loop: Any, listing: Listing, schema: AttributeSchema, learnings: list,
                 synonyms: dict[str, dict[str, str]], patterns: dict[str, list[str]],
                 screen: Screen, benched: set[str]) -> tuple[list[WorkerOutput], list[str]]:
    """Every worker's output (the ``benched`` generators' excepted), the generators' values screened
    (screening.py); and what was screened out."""
    outputs: list[WorkerOutput] = []
    screened: list[str] = []
    names = [a.name for a in schema.attributes]
    for generator in loop.generators:
        if generator.name in benched:
            continue
        try:
            out = generator.extract(listing, schema, learnings)
            kept, dropped = screen_values(out.values, screen)
            if dropped:
                screened += [f"{generator.name} {a}={out.values[a]!r}: {why}" for a, why in dropped.items()]
                out = out.model_copy(update={"values": kept})
            outputs.append(out)
        except LLMError as exc:  # invalid JSON after retries, or a dead endpoint: the other workers go on
            log.warning("generator %s failed on %s: %s", generator.name, listing.id, exc)
            outputs.append(WorkerOutput(worker=generator.name, model=generator.llm.model, prompt_version="",
                                        values=dict.fromkeys(names), error=str(exc)[:300]))
    if loop.config.compiled_worker:
        compiled = CompiledExtractor(lambda c, a: synonyms[a], lambda c, a: patterns[a])
        outputs.append(compiled.extract(listing, schema, learnings))
    return outputs, screened


@dataclass
class _Value:
    """One value to store; its Extraction event is written with it (same position in the log)."""

    attribute: str
    value: str | None
    status: str
    model: str
    prompt_version: str
    learning_ids: list[int]
    batch_id: str | None
    confidence: float | None = None


@dataclass
class Plan:
    """Everything one product will write, decided before the first write: values and events in log order,
    review items, the learnings' counters, and the drafts the runner places first."""

    result: ProductResult
    log: list[_Value | Event] = field(default_factory=list)
    reviews: list[Callable[[Session], Any]] = field(default_factory=list)
    drafts: list[tuple[str, LearningDraft]] = field(default_factory=list)  # (attribute, draft)
    injected: list[int] = field(default_factory=list)
    disagreed: bool = False


def apply_plans(session: Session, plans: list[Plan], kb: Any = None) -> None:
    """Write a group of plans set-at-a-time (see ``bulk``): events in order, values, review items, counters."""
    events: list[Event] = []
    values: list[tuple[int, str, _Value]] = []  # (index of its event, product id, value)
    for plan in plans:
        pid = plan.result.product_id
        for item in plan.log:
            if isinstance(item, _Value):
                values.append((len(events), pid, item))
                events.append(Extraction(product_id=pid, attribute=item.attribute, value=item.value,
                                         status=item.status, model=item.model, prompt_version=item.prompt_version,
                                         learning_ids=item.learning_ids, batch_id=item.batch_id))
            else:
                events.append(item)
    ids = EventLog(session).append_many(events)
    store_values(session, [{"product_id": pid, "attribute": v.attribute, "value": v.value, "status": v.status,
                            "confidence": v.confidence, "model": v.model, "prompt_version": v.prompt_version,
                            "learning_ids": v.learning_ids, "batch_id": v.batch_id, "event_id": ids[i]}
                           for i, pid, v in values])
    for plan in plans:
        for write in plan.reviews:
            write(session)
    injected = [i for p in plans for i in p.injected]
    if injected and kb is not None:  # one UPDATE per distinct increment, not per product
        kb.record_injection(injected)
        for disagreed in (True, False):
            ids_ = [i for p in plans if p.disagreed == disagreed for i in p.injected]
            if ids_:
                kb.record_outcome(ids_, disagreed=disagreed)


def plan_product(loop: Any, session: Session, listing: Listing, schema: AttributeSchema,
                 batch_id: str | None) -> Plan:
    cfg = loop.config
    kb = loop.kb_factory(session)
    category = listing.category_path or schema.category_path
    names = [a.name for a in schema.attributes]
    learnings, synonyms, patterns, screen = loop.knowledge.get(kb, category, names, cfg)
    injected = [lv.id for lv in learnings] if loop.generators else []
    benched = loop.track.benched(category, [g.name for g in loop.generators], product_id=listing.id)
    outputs, screened = _run_workers(loop, listing, schema, learnings, synonyms, patterns, screen, benched)
    res = ProductResult(product_id=listing.id, category_path=category, injected=injected, screened=screened,
                        benched=sorted(benched), tokens=sum(o.tokens for o in outputs),
                        seconds=sum(o.seconds for o in outputs))
    plan = Plan(result=res)
    preferred = ("kb", *(g.name for g in loop.generators))
    decisions = {a: vote(a, [(o.worker, o.values.get(a)) for o in outputs], synonyms=synonyms[a],
                         threshold=cfg.vote_threshold, preferred=preferred, abstaining=("kb",))
                 for a in names}
    decisions = _one_span_one_attribute(decisions)
    # Two nested values on an attribute where people confirmed one direction clearly more often than the
    # supervisor: the learned span convention reads them as one value (agreed, status convention), no dispute.
    conventions = _from_record(decisions, lambda a, d: loop.track.convention(category, a, d.candidates,
                                                                             product_id=listing.id))
    decisions.update({a: decisions[a].model_copy(update={"status": "convention", "value": v.value,
                                                         "reasons": [*decisions[a].reasons, v.reason]})
                      for a, v in conventions.items()})
    res.conventions = list(conventions)
    # A clash where one worker was confirmed right clearly more often than the supervisor: its value stands
    # without a call (still a disagreement in the health figures).
    trusted = _from_record(decisions, lambda a, d: loop.track.settle(category, a, d.candidates, product_id=listing.id))
    decisions.update({a: decisions[a].model_copy(update={"status": "trusted", "value": v.value})
                      for a, v in trusted.items()})
    to_check = {a: d.value for a, d in decisions.items() if d.needs_check and d.value}
    flags: dict[str, str] = {}
    evaluated = False  # a real verdict: only then can the evaluator's record settle a flag (below)
    if to_check:
        try:
            ev = loop.evaluator.check(listing, schema, to_check)
            flags, res.tokens, res.seconds = ev.flags, res.tokens + ev.tokens, res.seconds + ev.seconds
            evaluated = True
        except LLMError as exc:
            flags = dict.fromkeys(to_check, f"the evaluator gave no usable verdict ({type(exc).__name__})")
    disputes: list[AttributeDecision] = []
    pv = "+".join(sorted({o.prompt_version for o in outputs if o.prompt_version}))

    def kept_model(a: str) -> str:
        return "+".join(sorted({o.model for o in outputs if o.values.get(a) is not None} or {"rules"}))

    for a, d in list(decisions.items()):
        if d.status == "conflict" or a in flags:
            d = d.model_copy(update={"reasons": [*d.reasons, *([flags[a]] if a in flags else [])]})
            dropped = loop.track.drop(category, a, product_id=listing.id) if evaluated and d.status == "check" else None
            if dropped is None:
                disputes.append(d)
            else:  # the evaluator's flags on this attribute are trusted over the supervisor: the value goes
                trusted[a] = dropped
                decisions[a] = d.model_copy(update={"status": "trusted", "value": None})
    disputed = {d.attribute for d in disputes}
    models = {o.worker: o.model for o in outputs}
    res.trusted = list(trusted)
    priors = loop.fill_rates.priors(category, names)
    res.uncertainty = uncertainty(names, decisions, disputed, priors)
    escalate = loop.escalation.should_escalate(res.uncertainty, bool(disputes))
    loop.escalation.observe(res.uncertainty, escalate)
    extras = _extras(names, decisions, disputed, cfg.max_extra_attributes, priors) if escalate else []
    held = {d.attribute for d in extras}
    for a, d in decisions.items():
        if a in disputed or a in held:
            continue
        if a in trusted and trusted[a].value is None:
            res.statuses[a] = "empty"
        elif a in trusted:
            _keep(plan, listing.id, a, trusted[a].value, "trusted", models.get(trusted[a].worker, trusted[a].worker),
                  pv, injected, batch_id, trusted[a].accuracy)
        elif a in conventions:
            _keep(plan, listing.id, a, conventions[a].value, "convention", kept_model(a), pv, injected, batch_id,
                  conventions[a].accuracy)
        elif d.value is not None:
            _keep(plan, listing.id, a, d.value, "agreed", kept_model(a), pv, injected, batch_id)
        else:
            res.statuses[a] = "empty"
    settled = [decisions[a].model_copy(update={"reasons": [*decisions[a].reasons, v.reason]})
               for a, v in trusted.items()]
    _disagree(plan, listing.id, category, [*settled, *disputes], batch_id)
    _audit_settled(loop, plan, listing, decisions, {**conventions, **trusted}, batch_id)
    if escalate:
        res.escalated = [d.attribute for d in extras]
        _supervise(loop, session, kb, listing, schema, disputes, learnings, batch_id, plan,
                   extras=extras, fallback=lambda a: (kept_model(a), pv, injected))
    if cfg.titles:
        _title(loop, session, kb, listing, schema, learnings, batch_id, plan)
    if escalate and cfg.learn:
        draft = worked_draft(category, listing.title, res.values,
                             evidence=Evidence(kind="ruling", product_id=listing.id, note="worked example"))
        if draft is not None:
            plan.drafts.append(("*", draft))
    plan.injected, plan.disagreed = injected, bool(disputes)
    return plan


def _one_span_one_attribute(decisions: dict[str, AttributeDecision]) -> dict[str, AttributeDecision]:
    """A value the workers agree on for several attributes at once ("1lb" as net content, pack size and
    caffeine content) is at most one of them: all of them go to the evaluator instead of being stored."""
    shared = shared_values({a: d.value for a, d in decisions.items() if d.status == "agreed"})
    why = "the same value was given for several attributes"
    return {a: d.model_copy(update={"status": "check", "reasons": [*d.reasons, why]}) if a in shared else d
            for a, d in decisions.items()}


def _from_record(decisions: dict[str, AttributeDecision],
                 judge: Callable[[str, AttributeDecision], Verdict | None]) -> dict[str, Verdict]:
    """The clashes (schema attributes only: the title is decided later, in _title) that the track record
    decides, by ``judge``: a span convention or a trusted worker."""
    out = {}
    for a, d in decisions.items():
        if d.status == "conflict":
            verdict = judge(a, d)
            if verdict is not None:
                out[a] = verdict
    return out


def _audit_settled(loop: Any, plan: Plan, listing: Listing, decisions: dict[str, AttributeDecision],
                   verdicts: dict[str, Verdict], batch_id: str | None) -> None:
    """Spot checks of what the record decided without the supervisor (``LoopConfig.audit_settled``): the
    value stands; a person's answer supersedes it and scores the workers, so the record keeps learning."""
    cfg = loop.config
    if not cfg.learn or cfg.audit_settled <= 0.0:
        return
    models = loop.source_models()
    for a, v in verdicts.items():
        if not in_sample(listing.id, f"audit:{a}", cfg.audit_settled):
            continue  # salted: independent of the explore sample, which never reaches the record
        plan.result.reviews += 1
        plan.result.audited.append(a)
        why = f"audit sample of a dispute the track record settled (LoopConfig.audit_settled): {v.reason}"
        plan.reviews.append(lambda s, d=decisions[a], v=v, w=why: open_review(
            s, listing, d, proposed=v.value, confidence=v.accuracy, reason=w, batch_id=batch_id,
            proposed_by=v.worker, models=models))


_MISSING = "no worker found a value: give it only if the listing states it, else null"


def _extras(names: list[str], decisions: dict[str, AttributeDecision], disputed: set[str],
            limit: int, priors: list[float]) -> list[AttributeDecision]:
    """What an escalated product also asks the supervisor about: values only one worker found, then likely
    attributes nobody found (most likely first)."""
    unsure = [decisions[a].model_copy(update={"reasons": ["only one worker found this value"]})
              for a in names if a not in disputed and decisions[a].status == "check" and decisions[a].value]
    likely = sorted((i for i, a in enumerate(names) if a not in disputed and decisions[a].value is None
                     and priors[i] >= 0.2), key=lambda i: -priors[i])
    missing = [decisions[names[i]].model_copy(update={"reasons": [_MISSING]}) for i in likely]
    return [*unsure, *missing][:limit]


def _keep(plan: Plan, pid: str, attr: str, value: str, status: str, model: str, pv: str, ids: list[int],
          batch_id: str | None, confidence: float | None = None) -> None:
    plan.result.values[attr], plan.result.statuses[attr] = value, status
    plan.log.append(_Value(attr, value, status, model, pv, ids, batch_id, confidence))


def _disagree(plan: Plan, pid: str, category: str, disputes: list[AttributeDecision], batch_id: str | None) -> None:
    plan.result.disagreements += [d.attribute for d in disputes]
    events = [Disagreement(product_id=pid, attribute=d.attribute, category_path=category,
                           values=[c.value for c in d.candidates], reasons=d.reasons, batch_id=batch_id)
              for d in disputes]
    plan.log.extend(events)


def _title(loop: Any, session: Session, kb: Any, listing: Listing, schema: AttributeSchema, learnings: list,
           batch_id: str | None, plan: Plan) -> None:
    """The title is composed from the settled values, then goes through the same check → supervisor path."""
    from .titles import title_decision

    res = plan.result
    d = title_decision(listing, schema, res.values)
    res.statuses["title"] = "empty"
    if d.value is None:
        return
    if d.needs_check:
        try:
            ev = loop.evaluator.check(listing, schema, {"title": d.value})
            res.tokens, res.seconds = res.tokens + ev.tokens, res.seconds + ev.seconds
            flag = ev.flags.get("title")
        except LLMError as exc:
            flag = f"the evaluator gave no usable verdict ({type(exc).__name__})"
        if flag is None:
            _keep(plan, listing.id, "title", d.value, "agreed", "titles+" + ev.model, "title-v1", res.injected,
                  batch_id)
            return
        d = d.model_copy(update={"status": "conflict", "reasons": [flag]})
    _disagree(plan, listing.id, res.category_path, [d], batch_id)
    before = res.supervisor_calls
    _supervise(loop, session, kb, listing, schema, [d], learnings, batch_id, plan)
    res.supervisor_calls = before + 1


def _supervise(loop: Any, session: Session, kb: Any, listing: Listing, schema: AttributeSchema,
               disputes: list[AttributeDecision], learnings: list, batch_id: str | None, plan: Plan, *,
               extras: list[AttributeDecision] | None = None,
               fallback: Callable[[str], tuple[str, str, list[int]]] | None = None) -> None:
    cfg, res = loop.config, plan.result
    extras = extras or []
    tools = build_tools(session, listing, schema, kb=kb, index=loop.neighbours,
                        intents=getattr(getattr(loop.sw, "providers", None), "intents", None))
    res.supervisor_calls = 1
    try:
        asked = [*disputes, *extras]
        knowledge = "\n".join(x for x in (
            format_learnings(learnings, [d.attribute for d in asked]),
            worked_examples_block(learnings, listing.title, [a.name for a in schema.attributes],
                                  k=cfg.supervisor_examples)) if x)
        out = loop.supervisor.resolve(listing, schema, asked, tools=tools, knowledge=knowledge)
        rulings, model = out.rulings, out.model
        res.tokens, res.seconds = res.tokens + out.tokens, res.seconds + out.seconds
    except LLMError as exc:
        log.warning("supervisor failed on %s: %s", listing.id, exc)
        rulings, model = {}, loop.supervisor.llm.model
    haystack = f"{listing.title} {listing.description} {' '.join(listing.bullets)}".lower()
    ids = [lv.id for lv in learnings]
    models = loop.source_models()
    for d in disputes:
        r = rulings.get(d.attribute)
        value = r.value if r else None
        conf = r.confidence if r else 0.0
        if r is not None and d.attribute != "title":
            conf = loop.track.calibrated(conf, res.category_path, d.attribute)
        if value is not None and d.attribute != "title" and value.lower() not in haystack:
            conf = min(conf, 0.3)  # an ungrounded ruling is a guess: a person decides
        audited = cfg.learn and r is not None and in_sample(listing.id, d.attribute, cfg.audit_rulings)
        sent = r is None or conf < cfg.review_below or audited
        why = r.why_disagreed if r else "the supervisor gave no ruling"
        if audited and conf >= cfg.review_below:
            why = f"audit sample (LoopConfig.audit_rulings): {why}"
        if not sent and value is not None:
            _keep(plan, listing.id, d.attribute, value, "supervised", model, loop.supervisor.prompt_version, ids, batch_id,
                  conf)
        else:
            res.statuses[d.attribute] = "review" if sent else "empty"
        ruling = SupervisorRuling(product_id=listing.id, attribute=d.attribute, value=value, confidence=conf,
                                  why_disagreed=why, sent_to_review=sent)
        plan.log.append(ruling)
        if sent:
            res.reviews += 1
            plan.reviews.append(lambda s, d=d, v=value, c=conf, w=why: open_review(
                s, listing, d, proposed=v, confidence=c, reason=w, batch_id=batch_id, models=models))
            continue
        if cfg.learn and value is not None and d.attribute != "title":
            ev = Evidence(kind="ruling", product_id=listing.id, note=why[:900])
            for draft in value_drafts(res.category_path, d.attribute, value, listing.title,
                                      text=r.learning if r else None, evidence=ev):
                plan.drafts.append((d.attribute, draft))
    for d in extras:  # not disagreements: a grounded, confident ruling improves the value, nothing goes to review
        r = rulings.get(d.attribute)
        value = r.value if r else None
        if r is not None and value is not None and value.lower() in haystack and r.confidence >= cfg.review_below:
            _keep(plan, listing.id, d.attribute, value, "supervised", model, loop.supervisor.prompt_version, ids, batch_id,
                  r.confidence)
            plan.log.append(SupervisorRuling(product_id=listing.id, attribute=d.attribute, value=value,
                                             confidence=r.confidence, why_disagreed=r.why_disagreed or
                                             "escalated: the workers were unsure", sent_to_review=False))
            if cfg.learn:
                ev = Evidence(kind="ruling", product_id=listing.id, note="escalated: workers unsure")
                for draft in value_drafts(res.category_path, d.attribute, value, listing.title,
                                          text=r.learning, evidence=ev):
                    plan.drafts.append((d.attribute, draft))
        elif d.value is not None and fallback is not None:  # the worker's value stands
            kept_model, pv, used = fallback(d.attribute)
            _keep(plan, listing.id, d.attribute, d.value, "agreed", kept_model, pv, used, batch_id)
        else:
            res.statuses[d.attribute] = "empty"
