"""Health of the loop, per batch and over time, per category and attribute: disagreement rate (the north
star: it must fall), supervisor-call rate, tokens and seconds per product, learnings written and their
effect (disagreement rate on the attributes they touch, before vs after the batch that wrote them), and
flags for attributes outside the productive range."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store.catalog import category_filter
from .models import EnrichBatch, EnrichBatchStat

__all__ = ["RANGE", "AttributeHealth", "BatchHealth", "HealthReport", "health_report", "write_chart"]

RANGE = (0.02, 0.5)  # productive disagreement range; below: rubber-stamping, above: immature workers


class BatchHealth(BaseModel):
    seq: int
    batch_id: str
    products: int
    disagreement_rate: float
    supervisor_rate: float
    tokens_per_product: float
    seconds_per_product: float
    learnings: int
    # Disagreements settled by the track record without the supervisor (trust.py); from the batch's summary,
    # so it covers all categories even when the report is filtered to one.
    trusted: int = 0
    screened: int = 0  # worker values the knowledge base screened out before the vote (screening.py)
    conventions: int = 0  # nested values a learned span convention read as one (agreed, not disputed; trust.py)


class AttributeHealth(BaseModel):
    category_path: str
    attribute: str
    decided: int
    disagreement_rate: float
    first_rate: float | None = None  # in the first batch that saw it
    last_rate: float | None = None
    learnings: int = 0
    before: float | None = None  # disagreement rate up to the batch that wrote its first learning
    after: float | None = None  # and after it
    flag: str = ""


class HealthReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    batches: list[BatchHealth] = Field(default_factory=list)
    attributes: list[AttributeHealth] = Field(default_factory=list)


def _rate(d: int, n: int) -> float:
    return round(d / n, 4) if n else 0.0


def health_report(session: Session, *, category_prefix: str | None = None, low: float = RANGE[0],
                  high: float = RANGE[1], min_decided: int = 5) -> HealthReport:
    rows = list(session.scalars(select(EnrichBatchStat).order_by(EnrichBatchStat.seq, EnrichBatchStat.id)))
    if category_prefix:
        wanted = category_filter(category_prefix)
        rows = [r for r in rows if wanted(r.category_path)]
    per_batch: dict[int, dict] = defaultdict(lambda: defaultdict(float))
    per_attr: dict[tuple[str, str], list[EnrichBatchStat]] = defaultdict(list)
    costed: set[tuple[str, str]] = set()
    for r in rows:
        b = per_batch[r.seq]
        b["batch_id"] = r.batch_id  # type: ignore[assignment]
        if r.attribute == "*":
            if (r.batch_id, r.category_path) in costed:  # older stores hold a second "*" row per category (the
                continue  # worked examples' learnings, counted twice); the first one (lowest id) is the cost row
            costed.add((r.batch_id, r.category_path))
            for k in ("products", "supervisor_calls", "tokens", "seconds", "learnings"):
                b[k] += getattr(r, k)
        else:
            b["decided"] += r.decided
            b["disagreements"] += r.disagreements
            per_attr[(r.category_path, r.attribute)].append(r)
    summaries = {bid: summary or {} for bid, summary in session.execute(select(EnrichBatch.id, EnrichBatch.summary))}
    batches = [BatchHealth(seq=seq, batch_id=str(b["batch_id"]), products=int(b["products"]),
                           trusted=int(summaries.get(str(b["batch_id"]), {}).get("trusted", 0)),
                           screened=int(summaries.get(str(b["batch_id"]), {}).get("screened", 0)),
                           conventions=int(summaries.get(str(b["batch_id"]), {}).get("conventions", 0)),
                           disagreement_rate=_rate(int(b["disagreements"]), int(b["decided"])),
                           supervisor_rate=_rate(int(b["supervisor_calls"]), int(b["products"])),
                           tokens_per_product=round(b["tokens"] / b["products"], 1) if b["products"] else 0.0,
                           seconds_per_product=round(b["seconds"] / b["products"], 2) if b["products"] else 0.0,
                           learnings=int(b["learnings"])) for seq, b in sorted(per_batch.items())]
    attrs = []
    for (cat, attr), rs in sorted(per_attr.items()):
        decided = sum(r.decided for r in rs)
        rate = _rate(sum(r.disagreements for r in rs), decided)
        seen = [r for r in rs if r.decided]
        h = AttributeHealth(category_path=cat, attribute=attr, decided=decided, disagreement_rate=rate,
                            learnings=sum(r.learnings for r in rs),
                            first_rate=_rate(seen[0].disagreements, seen[0].decided) if seen else None,
                            last_rate=_rate(seen[-1].disagreements, seen[-1].decided) if seen else None)
        first_learning = next((r.seq for r in rs if r.learnings), None)
        if first_learning is not None:
            pre = [r for r in rs if r.seq <= first_learning]
            post = [r for r in rs if r.seq > first_learning]
            h.before = _rate(sum(r.disagreements for r in pre), sum(r.decided for r in pre))
            h.after = _rate(sum(r.disagreements for r in post), sum(r.decided for r in post)) if post else None
        if decided >= min_decided:
            h.flag = "too low" if rate < low else "too high" if rate > high else ""
        attrs.append(h)
    return HealthReport(batches=batches, attributes=attrs)


def write_chart(report: HealthReport, path: Path | str) -> Path:
    """PNG: disagreement rate and supervisor calls per product over batches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    xs = [b.seq for b in report.batches]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(xs, [b.disagreement_rate for b in report.batches], marker="o", label="disagreement rate")
    ax.plot(xs, [b.supervisor_rate for b in report.batches], marker="s", label="supervisor calls / product")
    ax.set_xlabel("batch")
    ax.set_ylim(bottom=0)
    ax.set_title("shelfwise enrich: learning without retraining")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
