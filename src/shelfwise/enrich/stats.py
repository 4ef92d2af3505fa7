"""Per-batch aggregation of product results into health counters (``enrich_batch_stats``)."""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from .models import EnrichBatchStat
from .product import ProductResult

__all__ = ["AttributeStats", "BatchReport", "aggregate", "write_stats"]


class AttributeStats(BaseModel):
    category_path: str
    attribute: str
    decided: int = 0
    disagreements: int = 0
    reviews: int = 0
    learnings: int = 0

    @property
    def disagreement_rate(self) -> float:
        return self.disagreements / self.decided if self.decided else 0.0


class BatchReport(BaseModel):
    batch_id: str
    seq: int
    products: int
    decided: int  # attribute slots where some worker proposed a value
    disagreements: int
    supervisor_calls: int
    trusted: int = 0  # disagreements settled by the track record, without the supervisor
    conventions: int = 0  # nested values read as one by a learned span convention (agreed, not disagreements)
    screened: int = 0  # worker values dropped before the vote by the knowledge base's screen
    benched: int = 0  # products extracted without a generator its track record benched (trust.py)
    reviews: int
    tokens: int
    seconds: float
    learnings_written: int
    per_attribute: list[AttributeStats] = Field(default_factory=list)
    # products set aside with their error (bad listing or schema); not counted above, not retried on resume
    failed: dict[str, str] = Field(default_factory=dict)

    @property
    def disagreement_rate(self) -> float:
        return self.disagreements / self.decided if self.decided else 0.0

    @property
    def supervisor_rate(self) -> float:
        return self.supervisor_calls / self.products if self.products else 0.0


def aggregate(batch_id: str, seq: int, results: list[ProductResult]) -> BatchReport:
    per: dict[tuple[str, str], AttributeStats] = {}
    for r in results:
        for attr, status in r.statuses.items():
            st = per.setdefault((r.category_path, attr), AttributeStats(category_path=r.category_path, attribute=attr))
            if status != "empty" or attr in r.disagreements:
                st.decided += 1
            st.disagreements += attr in r.disagreements
            st.reviews += status == "review" or attr in r.audited
        for _lid, attr, action in r.learnings:
            if attr == "*":  # a worked example is about the whole listing: counted in the category's row only
                continue
            st = per.setdefault((r.category_path, attr), AttributeStats(category_path=r.category_path, attribute=attr))
            st.learnings += action == "created"
    return BatchReport(
        batch_id=batch_id, seq=seq, products=len(results), decided=sum(s.decided for s in per.values()),
        disagreements=sum(len(r.disagreements) for r in results),
        supervisor_calls=sum(r.supervisor_calls for r in results), trusted=sum(len(r.trusted) for r in results),
        conventions=sum(len(r.conventions) for r in results), screened=sum(len(r.screened) for r in results),
        benched=sum(bool(r.benched) for r in results),
        reviews=sum(r.reviews for r in results),
        tokens=sum(r.tokens for r in results), seconds=round(sum(r.seconds for r in results), 3),
        learnings_written=sum(1 for r in results for x in r.learnings if x[2] == "created"),
        per_attribute=sorted(per.values(), key=lambda s: (s.category_path, s.attribute)))


def write_stats(session: Session, report: BatchReport, results: list[ProductResult]) -> None:
    cats: dict[str, list[ProductResult]] = defaultdict(list)
    for r in results:
        cats[r.category_path].append(r)
    for cat, rs in cats.items():  # per-category cost row, attribute "*"
        session.add(EnrichBatchStat(
            batch_id=report.batch_id, seq=report.seq, category_path=cat, attribute="*", products=len(rs),
            decided=0, disagreements=sum(len(r.disagreements) for r in rs),
            supervisor_calls=sum(r.supervisor_calls for r in rs), reviews=sum(r.reviews for r in rs),
            tokens=sum(r.tokens for r in rs), seconds=sum(r.seconds for r in rs),
            learnings=sum(1 for r in rs for x in r.learnings if x[2] == "created")))
    for st in report.per_attribute:
        session.add(EnrichBatchStat(
            batch_id=report.batch_id, seq=report.seq, category_path=st.category_path, attribute=st.attribute,
            products=len(cats[st.category_path]), decided=st.decided, disagreements=st.disagreements,
            supervisor_calls=0, reviews=st.reviews, tokens=0, seconds=0.0, learnings=st.learnings))
