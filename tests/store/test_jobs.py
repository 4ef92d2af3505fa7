"""Resumable batch jobs."""

from shelfwise.store.jobs import JobTracker


def test_job_marks_many_items_done_in_the_callers_transaction(any_db):
    tracker = JobTracker(any_db, "job-a")
    with any_db.session() as s:
        tracker.mark(s, "x", "failed", error="boom")        # an earlier attempt
    with any_db.session() as s:
        tracker.mark_many_done(s, {"x": {"n": 1}, "y": {"n": 2}})
    assert tracker.pending(["x", "y", "z"]) == ["z"]
    assert tracker.results() == {"x": {"n": 1}, "y": {"n": 2}}
