"""Whom to trust in a dispute, learned from what people confirmed.

Every resolved review item is a dispute with a human answer: the workers' values (its candidates), the
supervisor's proposal, and the resolution. From them the loop keeps a *track record* per source (each worker,
and the supervisor) per category and attribute. When the workers clash again on that attribute and one worker
has been right clearly more often than the supervisor (or nearly as often, when ``call_cost`` prices a
supervisor call in accuracy), its value is taken and the supervisor is not called: a learning about the panel
itself, not about the listing. The same record can *bench* a generator in a category (``benched``): one whose
values people confirmed far less often than another generator's stops being asked there, which saves its calls
and the disputes it starts.

Why from people only: supervisor rulings are not ground truth. On OA-Mine the 1.5B supervisor sided with the
0.5B worker's longer spans in 44 of 76 disputes and was right in 8 of those (docs/benchmarks.md); a record built
from its rulings would learn its bias. Estimates shrink from (source, category, attribute) towards
(source, category) and (source) with ``prior_strength`` pseudo-observations, so a handful of answers on one
attribute does not swing a decision, while a worker's general record carries over to attributes it has not
been audited on yet. Pure arithmetic over counts; ``from_reviews`` is the only read.

**Span conventions.** Most clashes between the generators are nested spans of one listing ("Two Rivers"
against "Two Rivers Coffee"; 58-67 % of generator clashes on OA-Mine), and which span is right is a
convention of the catalog per attribute (OA-Mine's train labels take the shorter Shoes model name 21 times
for 2 the longer, the longer Shoes colour 10 times for 4). The record scores two more sources on every
confirmed nested dispute, ``span:shorter`` and ``span:longer``; once one of them is right clearly more often
than the supervisor on an attribute, ``convention`` reads the two values as one (the learned span convention
is a normalisation, like a synonym) and the attribute counts as agreed, not disputed. Opt-in
(``span_conventions``): on OA-Mine it rarely fired, and its picks were right less often than the trusted
worker's values it replaced."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from .agreement import Candidate, normalize
from .models import ReviewItem

__all__ = ["EVALUATOR", "LONGER", "SHORTER", "SUPERVISOR", "TrackRecord", "TrustConfig", "TrustRow", "Verdict",
           "in_sample", "nested_spans"]

SUPERVISOR = "supervisor"  # the supervisor's proposals are scored like a worker's values
# The evaluator's flag on a single-source value ("this value is wrong") is scored too: a dispute whose workers
# gave one value between them reached review only through a flag, and the flag was right when the answer is
# another value or none.
EVALUATOR = "evaluator"
# Pseudo-sources scored on confirmed disputes between two nested values: was the shorter (longer) one right?
SHORTER, LONGER = "span:shorter", "span:longer"


class TrustConfig(BaseModel):
    """When a worker's record settles a dispute; frozen and self-validating."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # Human answers needed, for the worker and for the supervisor alike, before either is judged.
    min_answers: int = Field(6, ge=1)
    # The worker must beat the supervisor's estimated accuracy (and every other worker's) by this much.
    margin: float = Field(0.05, ge=0.0, le=1.0)
    # Accuracy per dispute the loop may give up to save a supervisor call: the trusted source need only come
    # within ``call_cost - margin`` of the supervisor's record (rival workers must still be beaten by
    # ``margin``). 0 calls the supervisor unless a source clearly beats it; where the supervisor is barely
    # better than the best worker (OA-Mine: right in 43 % of confirmed disputes, the 1.5B worker in 35 %), a
    # call buys little and a cost-minded deployment raises this.
    call_cost: float = Field(0.0, ge=0.0, le=1.0)
    prior_strength: float = Field(4.0, gt=0.0)
    # Share of disputes the record could settle that still go to the supervisor (a stable hash of product and
    # attribute picks them), so a drift in the workers shows up in later audits instead of going unseen.
    explore: float = Field(0.1, ge=0.0, le=1.0)
    history: int = Field(5000, ge=1, description="most recent resolved review items read")
    # Cap the supervisor's stated confidence at its record on the attribute (then ``review_below`` sends
    # rulings on attributes where it is usually wrong to a person).
    calibrate: bool = True
    # A generator whose confirmed record in a category is at or below this, with another generator right at
    # least ``margin`` more often there, is left out of that category's panel (0 = never): its clashes
    # only summon the supervisor to overrule it. ``explore`` of its products still consult it, so its record
    # keeps up if it improves (new learnings, another model). Never the last generator.
    bench_below: float = Field(0.0, ge=0.0, le=1.0)
    # Read two nested values as one when a span convention holds on the attribute (``convention``): the
    # direction needs this many confirmed nested disputes on the attribute itself, and the supervisor
    # ``min_answers`` overall. Off by default: on OA-Mine it fired rarely and its picks were right less often
    # than the trusted worker's it replaced (docs/benchmarks.md, tenth session).
    span_conventions: bool = False
    span_min_answers: int = Field(3, ge=1)


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    worker: str
    value: str | None  # None: the evaluator's flag stands and the flagged value is dropped
    accuracy: float
    supervisor_accuracy: float

    @property
    def reason(self) -> str:
        if self.worker in (SHORTER, LONGER):
            return (f"span convention: the {self.worker.split(':')[1]} of two nested values was right in "
                    f"{self.accuracy:.0%} of confirmed disputes, the supervisor in {self.supervisor_accuracy:.0%}")
        what = "confirmed flags" if self.worker == EVALUATOR else "confirmed disputes"
        why = (f"settled by track record: {self.worker} right in {self.accuracy:.0%} of {what}, "
               f"the supervisor in {self.supervisor_accuracy:.0%}")
        return why + (" (within the price of a call, TrustConfig.call_cost)"
                      if self.accuracy < self.supervisor_accuracy else "")


class TrustRow(BaseModel):
    """One line of the track record, for reports."""

    source: str
    category_path: str
    attribute: str
    right: float
    answers: float
    accuracy: float  # shrunk estimate


_Key = tuple[str, ...]


class TrackRecord:
    def __init__(self, config: TrustConfig | None = None) -> None:
        self.config = config or TrustConfig()
        self._right: dict[_Key, float] = defaultdict(float)
        self._total: dict[_Key, float] = defaultdict(float)

    @classmethod
    def from_reviews(cls, session: Session, config: TrustConfig | None = None,
                     models: Mapping[str, str] | None = None) -> TrackRecord:
        """The record from the newest resolved review items. With ``models`` (source -> the model it runs
        now), an answer about a source that ran another model when the item was opened does not count for it:
        a role moved to a new model starts its record afresh instead of inheriting the old model's."""
        record = cls(config)
        rows = session.scalars(select(ReviewItem).where(ReviewItem.status == "resolved", ReviewItem.attribute != "title")
                               .order_by(ReviewItem.id.desc()).limit(record.config.history)).all()
        for r in rows:
            record.observe_dispute(r.category_path, r.attribute, _workers(r.candidates), r.proposed, r.resolution,
                                   proposed_by=r.proposed_by, stale=_replaced(r.models, models))
        return record

    def observe(self, source: str, category: str, attribute: str, right: bool) -> None:
        for key in ((source,), (source, category), (source, category, attribute)):
            self._total[key] += 1.0
            self._right[key] += float(right)

    def observe_dispute(self, category: str, attribute: str, workers: Mapping[str, str | None],
                        proposed: str | None, truth: str | None, *, proposed_by: str | None = None,
                        stale: Container[str] = ()) -> None:
        """One confirmed dispute: a worker that gave a value was right or wrong; one that gave none abstained.
        The supervisor is scored on its proposal, ``None`` included ("the listing does not say" can be right),
        unless someone else proposed it (``proposed_by``: an audited dispute the record itself settled, where
        the supervisor was never asked). Sources in ``stale`` (whose model has since been replaced) are not
        scored."""
        want = normalize(truth)
        given = set()
        for worker, value in workers.items():
            key = normalize(value)
            if key is not None:
                if worker not in stale:
                    self.observe(worker, category, attribute, key == want)
                given.add(key)
        if len(given) == 1 and EVALUATOR not in stale:  # one value between them: the evaluator flagged it
            self.observe(EVALUATOR, category, attribute, next(iter(given)) != want)
        spans = nested_spans(*given) if len(given) == 2 else None
        if spans is not None:
            self.observe(SHORTER, category, attribute, spans[0] == want)
            self.observe(LONGER, category, attribute, spans[1] == want)
        if proposed_by in (None, SUPERVISOR) and SUPERVISOR not in stale:
            self.observe(SUPERVISOR, category, attribute, normalize(proposed) == want)

    def answers(self, source: str) -> float:
        return self._total.get((source,), 0.0)

    def accuracy(self, source: str, category: str, attribute: str) -> float:
        """Shrunk estimate: source overall (Laplace) → in this category → on this attribute."""
        return self._estimate((source, category, attribute))

    def _estimate(self, key: _Key) -> float:
        k = self.config.prior_strength
        mean = (self._right.get(key[:1], 0.0) + 1.0) / (self._total.get(key[:1], 0.0) + 2.0)
        for depth in range(2, len(key) + 1):
            mean = (self._right.get(key[:depth], 0.0) + k * mean) / (self._total.get(key[:depth], 0.0) + k)
        return mean

    def settle(self, category: str, attribute: str, candidates: Sequence[Candidate], *,
               product_id: str = "") -> Verdict | None:
        """The value of the worker to trust in this dispute, or ``None``: the supervisor decides."""
        cfg = self.config
        present = {c.worker: c for c in candidates if c.key is not None}
        if not cfg.enabled or len({c.key for c in present.values()}) < 2:
            return None
        if self.answers(SUPERVISOR) < cfg.min_answers:
            return None
        scored = sorted(((self.accuracy(w, category, attribute), w) for w in present
                         if self.answers(w) >= cfg.min_answers), reverse=True)
        if not scored:
            return None
        best, worker = scored[0]
        supervisor = self.accuracy(SUPERVISOR, category, attribute)
        rivals = [acc for acc, w in scored[1:] if present[w].key != present[worker].key]
        if (not self._replaces_call(best, supervisor) or any(best < acc + cfg.margin for acc in rivals)
                or in_sample(product_id, attribute, cfg.explore)):
            return None
        return Verdict(worker=worker, value=str(present[worker].value), accuracy=round(best, 4),
                       supervisor_accuracy=round(supervisor, 4))

    def convention(self, category: str, attribute: str, candidates: Sequence[Candidate], *,
                   product_id: str = "", abstaining: Sequence[str] = ("kb",)) -> Verdict | None:
        """The value a learned span convention picks when the workers gave two nested values (and no other),
        or ``None``. The direction must have ``span_min_answers`` confirmed nested disputes on this attribute,
        beat the supervisor's record there as a worker must in ``settle``, and beat the other direction by
        ``margin``; ``explore`` of such disputes still go to the supervisor, so the record keeps being audited."""
        cfg = self.config
        if not (cfg.enabled and cfg.span_conventions) or self.answers(SUPERVISOR) < cfg.min_answers:
            return None
        present = [c for c in candidates if c.key is not None]
        keys = {c.key for c in present}
        if len(keys) != 2 or any(c.worker in abstaining for c in present):
            return None
        spans = nested_spans(*keys)
        if spans is None:
            return None
        scored = sorted((self.accuracy(src, category, attribute), src, key)
                        for src, key in ((SHORTER, spans[0]), (LONGER, spans[1]))
                        if self._total.get((src, category, attribute), 0.0) >= cfg.span_min_answers)
        if not scored:
            return None
        best, source, key = scored[-1]
        other = scored[0][0] if len(scored) == 2 else 0.0
        supervisor = self.accuracy(SUPERVISOR, category, attribute)
        if (not self._replaces_call(best, supervisor) or best < other + cfg.margin
                or in_sample(product_id, attribute, cfg.explore)):
            return None
        value = next(c.value for c in present if c.key == key)
        return Verdict(worker=source, value=str(value), accuracy=round(best, 4), supervisor_accuracy=round(supervisor, 4))

    def drop(self, category: str, attribute: str, *, product_id: str = "") -> Verdict | None:
        """Whether the evaluator's flag on a single-source value settles it (the value is dropped, no
        supervisor call): its flags were confirmed clearly more often than the supervisor's proposals were."""
        cfg = self.config
        if not cfg.enabled or min(self.answers(SUPERVISOR), self.answers(EVALUATOR)) < cfg.min_answers:
            return None
        flags, supervisor = self.accuracy(EVALUATOR, category, attribute), self.accuracy(SUPERVISOR, category, attribute)
        if not self._replaces_call(flags, supervisor) or in_sample(product_id, attribute, cfg.explore):
            return None
        return Verdict(worker=EVALUATOR, value=None, accuracy=round(flags, 4), supervisor_accuracy=round(supervisor, 4))

    def benched(self, category: str, generators: Sequence[str], *, product_id: str = "") -> set[str]:
        """The generators to leave out of this category's panel for this product (``bench_below``)."""
        cfg = self.config
        if not cfg.enabled or cfg.bench_below <= 0.0 or len(generators) < 2:
            return set()
        scored = {w: self._estimate((w, category)) for w in generators if self.answers(w) >= cfg.min_answers}
        out = {w for w, acc in scored.items()
               if acc <= cfg.bench_below and any(o != w and other >= acc + cfg.margin for o, other in scored.items())
               and not in_sample(product_id, f"bench:{w}", cfg.explore)}
        if len(out) == len(generators):  # keep the best of them
            out.discard(max(out, key=lambda w: scored[w]))
        return out

    def _replaces_call(self, accuracy: float, supervisor: float) -> bool:
        """Whether a source this accurate may stand in for the supervisor: it beats the supervisor's record by
        ``margin``, less the accuracy a call is worth giving up (``call_cost``). One rule for workers and flags."""
        return accuracy >= supervisor + self.config.margin - self.config.call_cost

    def calibrated(self, stated: float, category: str, attribute: str, source: str = SUPERVISOR) -> float:
        """A ruling's confidence, never above ``source``'s confirmed record on this attribute once it has
        ``min_answers``: small models state a near-constant figure (the 1.5B supervisor said 0.5 to every
        ruling), and only the record tells an attribute where it is usually right from one where it is usually
        wrong. The lower of the two, so a guard's or the model's own doubt (0) is never raised."""
        if not self.config.calibrate or self.answers(source) < self.config.min_answers:
            return stated
        return min(stated, round(self.accuracy(source, category, attribute), 4))

    def rows(self) -> list[TrustRow]:
        """Every level of the record (source; source in a category; on an attribute) with its estimate."""
        out = [TrustRow(source=key[0], category_path=(*key, "")[1], attribute=(*key, "", "")[2],
                        right=self._right[key], answers=total, accuracy=round(self._estimate(key), 4))
               for key, total in self._total.items()]
        return sorted(out, key=lambda r: (r.category_path, r.attribute, -r.accuracy, r.source))


def _workers(candidates: Iterable[Any]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for c in candidates or ():
        if isinstance(c, Mapping) and c.get("worker"):
            out[str(c["worker"])] = c.get("value")
    return out


def _replaced(recorded: Mapping[str, Any] | None, current: Mapping[str, str] | None) -> set[str]:
    """The sources whose model when the item was opened is not the one they run now (unknown counts as same)."""
    if not recorded or not current:
        return set()
    return {src for src, model in recorded.items() if src in current and model and current[src] != model}


def nested_spans(a: str, b: str) -> tuple[str, str] | None:
    """``(shorter, longer)`` when one normalised value is a whole-word run inside the other ("two rivers" in
    "two rivers coffee pods", not "rive" in "rivers"), else ``None``."""
    ta, tb = a.split(), b.split()
    if len(ta) > len(tb):
        (a, ta), (b, tb) = (b, tb), (a, ta)
    if ta == tb or not ta:
        return None
    n = len(ta)
    return (a, b) if any(tb[i:i + n] == ta for i in range(len(tb) - n + 1)) else None


def in_sample(product_id: str, attribute: str, share: float) -> bool:
    """A stable pseudo-random choice of ``share`` of (product, attribute) pairs: the same pair always gets the
    same answer, so a resumed batch decides as the crashed run did. Every sample drawn with a smaller share is
    inside one drawn with a larger share (the explored disputes are among the audited ones)."""
    if share <= 0.0:
        return False
    h = hashlib.blake2b(f"{product_id}\x1f{attribute}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 < share
