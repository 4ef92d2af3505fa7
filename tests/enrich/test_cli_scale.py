"""`shelfwise enrich --workers N`: several batches per round, opened by the driver, run through run_sharded."""

from __future__ import annotations

from sqlalchemy import select


def test_enrich_with_workers_runs_side_by_side_batches_and_resumes_them(monkeypatch, scripted_sw):
    from typer.testing import CliRunner

    import shelfwise.cli.enrich as cli_enrich
    from shelfwise.cli.main import app
    from shelfwise.enrich.models import EnrichBatch

    monkeypatch.setattr(cli_enrich, "open_app", lambda migrate=True: scripted_sw)
    monkeypatch.setattr(scripted_sw, "close", lambda: None)
    from shelfwise.enrich import EnrichmentLoop

    with scripted_sw.db.session() as s:
        todo = cli_enrich.pending_products(s, None, 10_000)
    interrupted = EnrichmentLoop(scripted_sw).open_batch(todo[:2])   # a crash left this batch running
    configs = []
    shard_task = cli_enrich.enrich_shard
    monkeypatch.setattr(cli_enrich, "enrich_shard", lambda sw, shard: (configs.append(shard[2]), shard_task(sw, shard))[1])
    res = CliRunner().invoke(app, ["enrich", "--batch-size", "1", "--batches", "2", "--workers", "2",
                                   "--no-titles", "--audit-rulings", "0.5", "--audit-settled", "0.3", "--call-cost", "0.2",
                                   "--bench-below", "0.25"])
    assert res.exit_code == 0, res.output
    # every shard runs with the driver's whole configuration, not only the flags it was once given
    assert len(configs) == 3 and all(c.audit_rulings == 0.5 and c.audit_settled == 0.3 and c.trust.call_cost == 0.2 and c.trust.bench_below == 0.25 and not c.titles
                                     for c in configs)
    with scripted_sw.db.session() as s:
        batches = list(s.scalars(select(EnrichBatch).order_by(EnrichBatch.seq)))
        left = cli_enrich.pending_products(s, None, 10_000)
    # round 1 finishes the interrupted batch alone; round 2 opens two new ones side by side
    assert batches[0].id == interrupted.id and len(batches) == 3
    assert all(b.status == "done" for b in batches) and left == todo[4:]
    assert batches[1].product_ids == todo[2:3] and batches[2].product_ids == todo[3:4]
