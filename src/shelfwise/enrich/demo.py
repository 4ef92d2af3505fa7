"""The enrichment step of `make demo`: two small batches on the demo catalog. Batch 1 meets disagreements,
the supervisor rules and learnings are written; batch 2 (other products, same categories) reads them and
disagrees less. Model calls are cached by prompt hash, so a second run is fast."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from ..store.models import Product
from .health import health_report, write_chart
from .runner import BatchReport, EnrichmentLoop, LoopConfig, ProductResult

if TYPE_CHECKING:  # pragma: no cover
    from ..app import Shelfwise

__all__ = ["pick_demo_products", "run_demo"]


def pick_demo_products(sw: Shelfwise, per_batch: int = 4) -> tuple[list[str], list[str]]:
    """Two disjoint batches from the category with the most products (learnings are scoped by category)."""
    with sw.db.session() as s:
        rows = s.execute(select(Product.id, Product.category_path).where(Product.deleted.is_(False))
                         .order_by(Product.id)).all()
    if not rows:
        return [], []
    top = Counter(c for _i, c in rows).most_common(1)[0][0]
    ids = [i for i, c in rows if c == top] + [i for i, c in rows if c != top]
    per_batch = max(1, min(per_batch, len(ids) // 2))
    return ids[:per_batch], ids[per_batch: 2 * per_batch]


def _batch_table(title: str, results: list[ProductResult], report: BatchReport) -> Table:
    table = Table("product", "values", "disagreed on", "supervisor checked", "learnings used", title=title,
                  show_lines=False)
    for r in results:
        vals = ", ".join(f"{a}={v}" for a, v in r.values.items() if v and a != "title")[:90]
        checked = [f"{a}:{r.statuses.get(a)}" for a in r.disagreements]
        checked += [f"{a} (unsure):{r.statuses.get(a)}" for a in r.escalated if a not in r.disagreements]
        table.add_row(r.product_id, vals, ", ".join(r.disagreements) or "-", ", ".join(checked) or "-",
                      ", ".join(f"#{i}" for i in r.injected) or "-")
    table.caption = (f"disagreement rate {report.disagreement_rate:.0%} · supervisor calls {report.supervisor_calls}"
                     f" · learnings written {report.learnings_written} · model seconds {report.seconds:.0f}")
    return table


def run_demo(sw: Shelfwise, console: Console) -> None:
    first, second = pick_demo_products(sw)
    if not first:
        console.print("no products ingested: nothing to enrich")
        return
    # Four products per batch is too few for the escalation policy to rank uncertainty against its history,
    # so the demo lowers the cold-start bar and spends up to half the batch on the supervisor: the point is to
    # show rulings and learnings, which the production defaults (35 %, bar 3.0) reach only over more products.
    loop = EnrichmentLoop(sw, LoopConfig(supervisor_budget=0.5, escalation_cold_threshold=1.0))
    for name, ids in (("batch 1", first), ("batch 2", second)):
        if not ids:
            continue
        results: list[ProductResult] = []
        with console.status(f"{name}: enriching {len(ids)} products…"):
            report = loop.run_batch(ids, on_product=results.append)
        console.print(_batch_table(name, results, report))
        if name == "batch 1":
            from .kb import KnowledgeBase

            with sw.db.session() as s:
                learned = KnowledgeBase(s).list(status="active")
            lt = Table("id", "scope", "learning", "normalise", title="learnings written")
            for lv in learned[:8]:
                lt.add_row(str(lv.id), f"{lv.category_path or 'all'}/{lv.attribute or '*'}", lv.text[:70],
                           ", ".join(list(lv.normalize.values())[:4]))
            console.print(lt)
    with sw.db.session() as s:
        health = health_report(s)
    chart = write_chart(health, sw.settings.home / "enrich_health.png")
    for b in health.batches:
        console.print(f"batch {b.seq}: disagreement rate {b.disagreement_rate:.0%}, "
                      f"supervisor calls/product {b.supervisor_rate:.2f}")
    console.print(f"chart: [bold]{chart}[/]  (`shelfwise report` prints the full health table)")
