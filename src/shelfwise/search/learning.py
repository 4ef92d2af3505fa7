"""Offline learning from the event log and from graded judgements: bandit replay, returns into the memory
index, ranker training sets. Cursors in ``search_cursors`` make each replay resume where the last stopped."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from ..errors import InputError
from ..store.events import EventLog
from ..store.models import utcnow
from .bandit import DEFAULT_ARMS, Arm, ContextualBandit
from .feedback import find_impression
from .memory import record_interaction
from .models import SearchCursor
from .pipeline import Searcher
from .query import validate_query
from .rank import Interaction, LTRRanker, feature_matrix, ipw_labels
from .text import normalize_query

__all__ = ["REWARDS", "judged_training_data", "learn_bandit", "replay_returns", "train_ranker_from_log",
           "validate_judgements"]

log = logging.getLogger("shelfwise.search")

# Reward of one search decision, in [0, 1]: the best thing the shopper did with its results.
REWARDS = {"click": 0.5, "add_to_cart": 0.75, "purchase": 1.0}
_FEEDBACK = ("click", "add_to_cart", "purchase", "customer_return")


def _cursor(session: Session, name: str) -> SearchCursor:
    row = session.get(SearchCursor, name)
    if row is None:
        row = SearchCursor(name=name, last_event_id=0, updated_at=utcnow())
        session.add(row)
    return row


def replay_returns(session: Session, half_life_days: float) -> int:
    cursor = _cursor(session, "returns")
    n = 0
    for stored in list(EventLog(session).read("customer_return", since_id=cursor.last_event_id)):
        ev = stored.event
        query = ev.query
        if query is None and ev.decision_id:
            impression = find_impression(session, ev.decision_id)
            query = impression.query if impression else None
        if query and ev.product_id:
            record_interaction(session, query, ev.product_id, "customer_return", half_life_days=half_life_days)
            n += 1
        cursor.last_event_id = stored.id
    return n


def learn_bandit(session: Session, bandit: ContextualBandit, *, before: datetime) -> int:
    """Learn every logged decision older than ``before`` (its feedback window has closed) exactly once."""
    cursor = _cursor(session, "bandit")
    events = EventLog(session)
    closed = []
    for stored in events.read("search_impression", since_id=cursor.last_event_id):
        if stored.ts > before:
            break
        closed.append(stored)
    if not closed:
        return 0
    reward: dict[str, float] = defaultdict(float)
    returned: set[str] = set()
    for stored in events.read(list(_FEEDBACK), since_id=closed[0].id - 1):
        ev = stored.event
        if ev.decision_id is None:
            continue
        if ev.type == "customer_return":
            returned.add(ev.decision_id)
        else:
            reward[ev.decision_id] = max(reward[ev.decision_id], REWARDS[ev.type])
    arms = {a.name for a in bandit.arms}
    ctx, acts, props, rews = [], [], [], []
    for stored in closed:
        ev = stored.event
        arm = ev.action.get("arm")
        if arm in arms and ev.propensity < 1.0:  # forced arms (propensity 1) are not exploration data
            r = reward.get(ev.decision_id, 0.0)
            ctx.append(ev.context)
            acts.append(arm)
            props.append(ev.propensity)
            rews.append(min(r, 0.25) if ev.decision_id in returned else r)
    bandit.partial_fit(ctx, acts, props, rews)
    cursor.last_event_id = closed[-1].id
    return len(acts)


def train_ranker_from_log(session: Session, searcher: Searcher, *, eta: float = 1.0, min_queries: int = 2
                          ) -> tuple[LTRRanker | None, int]:
    """IPW-debiased labels from every logged impression and interaction -> a LambdaMART ranker (none until
    ``min_queries`` queries have a clicked product: a ranker fitted on a handful generalises badly)."""
    events = EventLog(session)
    impressions, texts = [], {}
    for stored in events.read("search_impression"):
        try:  # the log may hold an impression no search could have made; one bad row must not stop learning
            validate_query(stored.event.query, searcher.config)
        except InputError as exc:
            log.warning("ranker training skips search_impression event %d: %s", stored.id, exc)
            continue
        key = normalize_query(stored.event.query)
        impressions.append((key, stored.event.product_ids))
        texts.setdefault(key, stored.event.query)
    interactions = [
        Interaction(normalize_query(s.event.query), s.event.product_id, s.event.position or 0, s.event.type)
        for s in events.read(["click", "add_to_cart", "purchase"]) if s.event.query and s.event.product_id
    ]
    labels = ipw_labels(impressions, interactions, eta=eta)
    judged: dict[str, dict[str, int]] = defaultdict(dict)
    for (key, pid), label in labels.items():
        if key in texts:
            judged[texts[key]][pid] = label
    X, y, groups = judged_training_data(searcher, judged, candidates_from=None)
    if len(groups) < min_queries or y.max(initial=0) == 0:
        return None, len(groups)
    return LTRRanker(n_estimators=100).fit(X, y, groups), len(groups)


def judged_training_data(searcher: Searcher, judgements: Mapping[str, Mapping[str, int]], *,
                         candidates_from: Arm | None = DEFAULT_ARMS[-1], rows_out: list[tuple[str, np.ndarray]] | None = None,
                         ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Feature rows for each query's judged products (plus, with ``candidates_from``, what that arm retrieves,
    unjudged ones labelled 0), so the ranker learns both to order the judged set and to push down noise.
    ``rows_out`` (optional) receives (query, its index rows in feature-row order) for each kept query."""
    xs, ys, groups = [], [], []
    for text, labels in judgements.items():
        # One query at a time under the index's read lock: training runs beside serving, and another worker's
        # changes may be applied to this index in place meanwhile (a few milliseconds' hold each).
        with searcher.index.guard.reading():
            try:
                q = searcher.query(text)
            except InputError as exc:
                raise InputError(f"judged query {text[:60]!r} is not searchable ({exc})",
                                 fix="fix or remove that query in the judgements") from exc
            row_of = searcher.index.row_of
            rows = {row_of[p]: int(lbl) for p, lbl in labels.items() if p in row_of}
            if candidates_from is not None:
                found, _ = searcher.candidates(q, candidates_from)
                for r in found.tolist():
                    rows.setdefault(int(r), 0)
            if len(rows) < 2 or max(rows.values()) == 0:
                continue
            r = np.fromiter(rows.keys(), dtype=np.int64, count=len(rows))
            features = feature_matrix(q, r)
        if rows_out is not None:
            rows_out.append((text, r))
        xs.append(features)
        ys.append(np.fromiter(rows.values(), dtype=np.int32, count=len(rows)))
        groups.append(len(rows))
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int32), []
    return np.vstack(xs), np.concatenate(ys), groups


_JUDGEMENTS_FORMAT = 'a JSON object {"query": {"product-id": label, ...}, ...} with integer labels 0..3'


def validate_judgements(data: object, *, max_label: int = 3) -> dict[str, dict[str, int]]:
    """Check graded judgements' shape before any training; ``InputError`` names the expected format."""
    if not isinstance(data, Mapping):
        raise InputError(f"judgements must be an object of queries, got {type(data).__name__}",
                         fix=f"write {_JUDGEMENTS_FORMAT}")
    out: dict[str, dict[str, int]] = {}
    for query, labels in data.items():
        if not isinstance(labels, Mapping):
            raise InputError(f"judgements for query {str(query)[:60]!r} are a {type(labels).__name__}, "
                             "not an object of product ids", fix=f"write {_JUDGEMENTS_FORMAT}")
        for pid, label in labels.items():
            # bool is an int in Python, but true/false is not a grade
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= max_label:
                raise InputError(f"label {label!r} of product {str(pid)[:60]!r} for query {str(query)[:60]!r} "
                                 f"is not an integer 0..{max_label}",
                                 fix=f"write {_JUDGEMENTS_FORMAT} (0 irrelevant, 1 complement, 2 substitute, 3 exact)")
        out[str(query)] = {str(p): int(v) for p, v in labels.items()}
    return out
