"""Annotation: a queue of sampled candidates (weighted towards diverse, less popular knowledge), five
yes/no questions, two annotators per item and a third on disagreement. An LLM may pre-label; its labels
are stored with ``machine = True`` and never count as one of the human annotators."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InputError, NotFoundError
from ..llm import Message
from ..llm.text import quote_untrusted
from .models import GraphAnnotation, GraphAnnotationItem, GraphCandidate

__all__ = ["QUESTIONS", "AnnotationQueue", "Answers", "prelabel", "resolved_labels"]

QUESTIONS: dict[str, str] = {
    "complete": "Is the explanation a complete, understandable phrase?",
    "relevant": "Is it relevant to the search / the products?",
    "informative": "Does it say something beyond restating the product?",
    "plausible": "Is it a plausible reason for this purchase?",
    "typical": "Is it a typical reason why people buy this?",
}
ELIGIBLE = ("kept", "annotation", "classifier")  # candidates that passed the automatic filters


class Answers(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    complete: bool
    relevant: bool
    informative: bool
    plausible: bool
    typical: bool


class _Judge(BaseModel):
    complete: bool = Field(description=QUESTIONS["complete"])
    relevant: bool = Field(description=QUESTIONS["relevant"])
    informative: bool = Field(description=QUESTIONS["informative"])
    plausible: bool = Field(description=QUESTIONS["plausible"])
    typical: bool = Field(description=QUESTIONS["typical"])


def resolved_labels(session: Session) -> dict[int, dict[str, bool]]:
    rows = session.execute(select(GraphAnnotationItem.candidate_id, GraphAnnotationItem.resolved)
                           .where(GraphAnnotationItem.status == "resolved"))
    return {cid: dict(res) for cid, res in rows if res}


class AnnotationQueue:
    def __init__(self, session: Session) -> None:
        self.s = session

    def sample(self, n: int, *, seed: int = 0) -> list[int]:
        """Queue up to ``n`` new items. Weight = 1/(1+tail frequency) × 1/(1+log(1+product popularity)),
        so rare knowledge about less popular products is favoured over common knowledge."""
        cands = self.s.execute(select(GraphCandidate.id, GraphCandidate.tail, GraphCandidate.product_ids)
                               .where(GraphCandidate.stage.in_(ELIGIBLE))).all()
        queued = set(self.s.scalars(select(GraphAnnotationItem.candidate_id)))
        tail_freq = Counter(t for _, t, _ in cands)
        popularity = Counter(p for _, _, pids in cands for p in pids)
        pool = [(cid, 1 / (1 + tail_freq[t]) / (1 + math.log1p(max(popularity[p] for p in pids or [""]))))
                for cid, t, pids in cands if cid not in queued]
        if not pool or n <= 0:
            return []
        weights = np.array([w for _, w in pool])
        picks = np.random.default_rng(seed).choice(len(pool), size=min(n, len(pool)), replace=False,
                                                   p=weights / weights.sum())
        ids = [pool[i][0] for i in sorted(picks)]
        self.s.add_all(GraphAnnotationItem(candidate_id=cid, weight=float(dict(pool)[cid]), status="open")
                       for cid in ids)
        self.s.flush()
        return ids

    def _humans(self, cid: int) -> list[GraphAnnotation]:
        return list(self.s.scalars(select(GraphAnnotation).where(GraphAnnotation.candidate_id == cid,
                                                                 GraphAnnotation.machine.is_(False))
                                   .order_by(GraphAnnotation.id)))

    def next_item(self, annotator: str) -> GraphCandidate | None:
        """A tie-break first, then an open item, that ``annotator`` has not labelled yet."""
        done = set(self.s.scalars(select(GraphAnnotation.candidate_id).where(GraphAnnotation.annotator == annotator)))
        for status in ("tiebreak", "open"):
            for cid in self.s.scalars(select(GraphAnnotationItem.candidate_id)
                                      .where(GraphAnnotationItem.status == status)
                                      .order_by(GraphAnnotationItem.weight.desc())):
                if cid not in done:
                    return self.s.get(GraphCandidate, cid)
        return None

    def record(self, candidate_id: int, annotator: str, answers: Answers | dict[str, Any], *,
               machine: bool = False) -> str:
        """Store one annotator's answers; returns the item's status (open | tiebreak | resolved)."""
        item = self.s.get(GraphAnnotationItem, candidate_id)
        if item is None:
            raise NotFoundError("annotation item", candidate_id, fix="queue items with `shelfwise graph annotate --sample N`")
        try:
            ans = answers if isinstance(answers, Answers) else Answers.model_validate(answers)
        except Exception as exc:
            raise InputError(f"answers need yes/no for {', '.join(QUESTIONS)}: {exc}".splitlines()[0],
                             fix="answer all five questions with true/false") from exc
        existing = self.s.scalar(select(GraphAnnotation).where(GraphAnnotation.candidate_id == candidate_id,
                                                               GraphAnnotation.annotator == annotator))
        if existing is not None:
            existing.answers = ans.model_dump()
        else:
            self.s.add(GraphAnnotation(candidate_id=candidate_id, annotator=annotator, machine=machine,
                                       answers=ans.model_dump()))
        self.s.flush()
        if machine:
            return item.status
        humans = self._humans(candidate_id)
        if len(humans) >= 3 or (len(humans) == 2 and humans[0].answers == humans[1].answers):
            votes = [h.answers for h in humans[:3]]
            item.status = "resolved"
            item.resolved = {q: sum(v[q] for v in votes) * 2 > len(votes) for q in QUESTIONS}
        elif len(humans) == 2:
            item.status = "tiebreak"
        return item.status

    def agreement(self) -> dict[str, Any]:
        """Cohen's kappa per question between the first two human annotators of each item, and how often
        machine pre-labels matched the resolved human answer."""
        from sklearn.metrics import cohen_kappa_score

        pairs: dict[str, tuple[list[bool], list[bool]]] = {q: ([], []) for q in QUESTIONS}
        machine_hits: Counter[str] = Counter()
        machine_n = 0
        for item in self.s.scalars(select(GraphAnnotationItem)):
            humans = self._humans(item.candidate_id)
            if len(humans) >= 2:
                for q in QUESTIONS:
                    pairs[q][0].append(humans[0].answers[q])
                    pairs[q][1].append(humans[1].answers[q])
            if item.resolved:
                for m in self.s.scalars(select(GraphAnnotation).where(
                        GraphAnnotation.candidate_id == item.candidate_id, GraphAnnotation.machine.is_(True))):
                    machine_n += 1
                    machine_hits.update(q for q in QUESTIONS if m.answers[q] == item.resolved[q])
        out: dict[str, Any] = {"items_double_annotated": len(pairs["complete"][0]), "kappa": {}, "raw_agreement": {}}
        for q, (a, b) in pairs.items():
            if a:
                same = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
                out["raw_agreement"][q] = round(same, 3)
                k = cohen_kappa_score(a, b) if len(set(a) | set(b)) > 1 else 1.0
                out["kappa"][q] = round(float(k), 3) if not math.isnan(k) else None
        out["machine_vs_resolved"] = {q: round(machine_hits[q] / machine_n, 3) for q in QUESTIONS} if machine_n else {}
        statuses = Counter(self.s.scalars(select(GraphAnnotationItem.status)))
        out["items"] = dict(statuses)
        return out

    def training_rows(self) -> list[tuple[GraphCandidate, dict[str, bool]]]:
        return [(self.s.get(GraphCandidate, cid), labels) for cid, labels in resolved_labels(self.s).items()]


def prelabel(db: Any, llm: Any, limit: int = 20) -> int:
    """Ask an LLM judge the five questions for unresolved items without a machine label. Model calls run
    outside any write transaction (the LLM cache writes to the same database)."""
    with db.session() as s:
        labelled = set(s.scalars(select(GraphAnnotation.candidate_id).where(GraphAnnotation.machine.is_(True))))
        todo = [s.get(GraphCandidate, cid) for cid in s.scalars(
            select(GraphAnnotationItem.candidate_id).where(GraphAnnotationItem.status != "resolved"))
            if cid not in labelled][:limit]
    for c in todo:
        context = quote_untrusted(f"query: {c.query or '-'}; products: {', '.join(c.product_ids)}", "BEHAVIOUR")
        prompt = (f"{context}\nCandidate reason ({c.relation}): {quote_untrusted(c.tail, 'REASON')}\n"
                  "Answer each question with true or false as JSON: "
                  + "; ".join(f"{k}: {q}" for k, q in QUESTIONS.items()))
        value, comp = llm.structured([Message(role="user", content=prompt)], _Judge, prompt_id="graph.judge.v1")
        with db.session() as s:
            AnnotationQueue(s).record(c.id, f"llm:{comp.model}", value.model_dump(), machine=True)
    return len(todo)
