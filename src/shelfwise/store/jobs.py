"""Resumable, idempotent batch jobs: each item is marked done in the same transaction as its result,
so a crash mid-batch redoes at most the item in flight and never duplicates a finished one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import insert, select

from .db import Database
from .models import JobItem, utcnow

__all__ = ["JobTracker"]


class JobTracker:
    def __init__(self, db: Database, job: str) -> None:
        self.db, self.job = db, job

    def done_items(self) -> set[str]:
        with self.db.session() as s:
            return set(s.scalars(select(JobItem.item).where(JobItem.job == self.job, JobItem.status == "done")))

    def pending(self, items: Iterable[str]) -> list[str]:
        """Items not done (failed ones included: a caller that quarantines items leaves them out itself)."""
        done = self.done_items()
        return [i for i in items if i not in done]

    def failed_items(self) -> dict[str, str]:
        """Item -> the error it failed with."""
        with self.db.session() as s:
            return {item: error or "" for item, error in s.execute(
                select(JobItem.item, JobItem.error).where(JobItem.job == self.job, JobItem.status == "failed"))}

    def retry(self, session, items: Iterable[str] | None = None) -> int:  # type: ignore[no-untyped-def]
        """Make failed items pending again (all of them, or these); returns how many."""
        stmt = select(JobItem).where(JobItem.job == self.job, JobItem.status == "failed")
        if items is not None:
            stmt = stmt.where(JobItem.item.in_(list(items)))
        rows = list(session.scalars(stmt))
        for row in rows:
            row.status = "pending"
        return len(rows)

    def mark(self, session, item: str, status: str, *, result: dict[str, Any] | None = None,  # type: ignore[no-untyped-def]
             error: str | None = None) -> None:
        """Record an item's outcome inside the caller's transaction."""
        row = session.scalar(select(JobItem).where(JobItem.job == self.job, JobItem.item == item))
        if row is None:
            row = JobItem(job=self.job, item=item, attempts=0)
            session.add(row)
        row.status, row.result, row.error = status, result, error
        row.attempts = (row.attempts or 0) + 1

    def mark_many_done(self, session, results: Mapping[str, dict[str, Any] | None]) -> None:  # type: ignore[no-untyped-def]
        """``mark(item, "done", result=...)`` for many items inside the caller's transaction: one read of the
        rows that exist (re-runs, rare), one multi-row insert for the rest — what batch writers need."""
        if not results:
            return
        existing = {row.item: row for row in session.scalars(
            select(JobItem).where(JobItem.job == self.job, JobItem.item.in_(list(results))))}
        fresh = []
        for item, result in results.items():
            row = existing.get(item)
            if row is None:
                fresh.append({"job": self.job, "item": item, "status": "done", "result": result, "attempts": 1,
                              "updated_at": utcnow()})
            else:
                row.status, row.result, row.error = "done", result, None
                row.attempts = (row.attempts or 0) + 1
        for start in range(0, len(fresh), 400):  # well inside SQLite's bound-parameter limit
            session.execute(insert(JobItem.__table__), fresh[start: start + 400])

    def results(self) -> dict[str, dict[str, Any] | None]:
        with self.db.session() as s:
            rows = s.execute(select(JobItem.item, JobItem.result).where(JobItem.job == self.job,
                                                                         JobItem.status == "done"))
            return {item: result for item, result in rows}
