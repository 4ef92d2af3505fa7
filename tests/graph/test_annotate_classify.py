"""Annotation queue, agreement statistics and the classifier."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shelfwise.app import Shelfwise
from shelfwise.errors import InputError, NotFoundError, NotTrainedError
from shelfwise.graph import AnnotationQueue, IntentClassifier, load_classifier
from shelfwise.graph.annotate import prelabel
from shelfwise.graph.models import GraphAnnotation, GraphCandidate
from shelfwise.llm.embed import HashingEmbedder

YES = {"complete": True, "relevant": True, "informative": True, "plausible": True, "typical": True}
NO = {**YES, "plausible": False, "typical": False}


def _seed(db, n=6):
    with db.session() as s:
        for i in range(n):
            s.add(GraphCandidate(pair_key=f"k{i}", kind="co_buy", product_ids=["a" if i < 4 else f"p{i}", "b"],
                                 relation="used_for_event", tail="common" if i < 3 else f"rare {i}", stage="kept",
                                 reason="", scores={}, model="m"))
        s.add(GraphCandidate(pair_key="dropped", kind="co_buy", product_ids=["z"], relation="is_a", tail="x",
                             stage="echo", reason="echo", scores={}, model="m"))


def test_sampling_prefers_rare_knowledge_and_skips_dropped(gsw):
    _seed(gsw.db)
    counts = {"common": 0, "rare": 0}
    for seed in range(30):
        with gsw.db.session() as s:
            ids = AnnotationQueue(s).sample(2, seed=seed)
            tails = [s.get(GraphCandidate, i).tail for i in ids]
            assert "x" not in tails
            for t in tails:
                counts["common" if t == "common" else "rare"] += 1
            s.rollback()
    assert counts["rare"] > counts["common"] * 1.5  # 3 rare vs 3 common candidates, rare weighted up


def test_two_annotators_then_tiebreak_and_kappa(gsw):
    _seed(gsw.db, 4)
    with gsw.db.session() as s:
        q = AnnotationQueue(s)
        ids = q.sample(4, seed=0)
        assert q.record(ids[0], "ann", YES) == "open"
        assert q.record(ids[0], "bob", YES) == "resolved"
        assert q.record(ids[1], "ann", YES) == "open"
        assert q.record(ids[1], "bob", NO) == "tiebreak"
        assert q.next_item("cat").id == ids[1]  # tie-breaks are served first
        assert q.next_item("ann").id not in (ids[0], ids[1])
        assert q.record(ids[1], "cat", NO) == "resolved"
        q.record(ids[2], "ann", NO)
        q.record(ids[2], "bob", NO)
        stats = q.agreement()
        assert stats["items_double_annotated"] == 3
        assert stats["raw_agreement"]["plausible"] == pytest.approx(2 / 3, abs=1e-3)
        assert stats["kappa"]["complete"] == 1.0 and -1 <= stats["kappa"]["plausible"] < 1
        labels = {c.id: lab for c, lab in q.training_rows()}
        assert labels[ids[1]]["plausible"] is False and labels[ids[0]]["typical"] is True
        with pytest.raises(InputError):
            q.record(ids[3], "ann", {"complete": True})
        with pytest.raises(NotFoundError):
            q.record(999, "ann", YES)


def test_machine_prelabels_are_marked_and_do_not_count(gsw, scripted):
    _seed(gsw.db, 2)
    scripted.responder = lambda req: '{"complete": true, "relevant": true, "informative": false, ' \
                                     '"plausible": true, "typical": false}'
    with gsw.db.session() as s:
        ids = AnnotationQueue(s).sample(2, seed=0)
    assert prelabel(gsw.db, gsw.llm("graph.generator"), limit=5) == 2
    assert prelabel(gsw.db, gsw.llm("graph.generator"), limit=5) == 0  # already pre-labelled
    with gsw.db.session() as s:
        q = AnnotationQueue(s)
        assert "<<<REASON" in scripted.requests[0].messages[0].content  # candidate text quoted as data
        assert q.record(ids[0], "ann", YES) == "open"  # the machine label is not the second annotator
        rows = list(s.scalars(select(GraphAnnotation).where(GraphAnnotation.machine.is_(True))))
        assert len(rows) == 2 and all(r.annotator.startswith("llm:") for r in rows)
        q.record(ids[0], "bob", YES)
        assert q.agreement()["machine_vs_resolved"]["typical"] == 0.0


def test_untrained_classifier_names_the_command(gsw):
    with pytest.raises(NotTrainedError, match="shelfwise graph train"):
        IntentClassifier(HashingEmbedder()).predict_proba(["h"], ["is_a"], ["t"])
    with pytest.raises(NotTrainedError, match="shelfwise graph train"):
        load_classifier(gsw)
    assert load_classifier(gsw, required=False) is None


def test_classifier_learns_and_round_trips(gsw):
    emb = gsw.embedder
    heads = [f"camping tent {i}" for i in range(40)]
    good = ["sleeping outdoors", "family camping", "rain shelter", "backyard campout"]
    bad = ["dry face", "play tennis", "office printer", "baby formula"]
    tails = [(good if i % 2 == 0 else bad)[i % 4] for i in range(40)]
    y = [int(i % 2 == 0) for i in range(40)]
    clf = IntentClassifier(emb).fit(heads, ["used_for_event"] * 40, tails, y)
    p = clf.predict_proba(["camping tent 99", "camping tent 98"], ["used_for_event"] * 2, ["rain shelter", "play tennis"])
    assert p.shape == (2, 2) and p[0, 0] > 0.5 > p[1, 0]
    assert clf.predict(["camping tent 99"], ["used_for_event"], ["rain shelter"]).tolist() == [[1, 1]]
    from shelfwise.graph.classifier import classifier_path

    clf.save(classifier_path(gsw.settings.home))
    loaded = load_classifier(gsw)
    assert loaded.n_train_ == 40 and loaded.predict_proba(["camping tent 1"], ["is_a"], ["x"]).shape == (1, 2)
    IntentClassifier(HashingEmbedder(dim=32)).fit(heads, ["is_a"] * 40, tails, y).save(classifier_path(gsw.settings.home))
    with pytest.raises(NotTrainedError, match="another embedder"):
        load_classifier(gsw)
    with pytest.raises(InputError):
        IntentClassifier(emb).fit(heads[:4], ["is_a"] * 4, tails[:4], [1, 1, 1, 1])


def test_train_command_fits_on_resolved_annotations_and_rescores_edges(gsw, monkeypatch):
    """`shelfwise graph train` end to end: annotations in, a saved classifier and scored edges out."""
    from typer.testing import CliRunner

    import shelfwise.cli.graph as graph_cli
    from shelfwise.cli.main import app
    from shelfwise.graph import GraphStore
    from shelfwise.graph.cascade import CandView

    with gsw.db.session() as s:
        for i in range(12):
            good = i % 2 == 0
            s.add(GraphCandidate(pair_key=f"search_buy:camping|tent-{i}", kind="search_buy", query="camping",
                                 product_ids=["tent-1"], relation="used_for_event",
                                 tail=("sleeping outdoors" if good else "office printer") + f" {i}",
                                 stage="kept", reason="", scores={}, model="m"))
    with gsw.db.session() as s:
        q = AnnotationQueue(s)
        for cid in q.sample(12, seed=0):
            answers = YES if s.get(GraphCandidate, cid).tail.startswith("sleeping") else NO
            q.record(cid, "ann", answers)
            q.record(cid, "bob", answers)
        GraphStore(s).add_edges([CandView(id=99, pair_key="search_buy:camping|tent-1", kind="search_buy",
                                          query="camping", product_ids=["tent-1"], relation="used_for_event",
                                          tail="sleeping outdoors")])
    monkeypatch.setattr(graph_cli, "open_app", lambda migrate=True: Shelfwise.open(gsw.settings))
    result = CliRunner().invoke(app, ["graph", "train"])
    assert result.exit_code == 0, result.output
    assert "trained on 12 annotations" in result.output and "1 edges rescored" in result.output
    assert load_classifier(gsw).n_train_ == 12
    with gsw.db.session() as s:
        edge = GraphStore(s).edges()[0]
    assert edge["plausibility"] is not None and 0 <= edge["plausibility"] <= 1
