"""Answering IntentionQA-style questions from a pair's knowledge, and the paired statistics."""

from __future__ import annotations

import pytest

from shelfwise.graph.qa import (
    MATCHERS,
    Knowledge,
    mcnemar_exact,
    option_to_tail,
    paired_difference,
    pick_option,
    wilson_interval,
)
from shelfwise.llm.embed import HashingEmbedder

OPTIONS = {
    "A": "because they both are capable of keeping him warm in winter.",
    "B": "because they both are a type of USB extension cable.",
    "C": "because the person wants to play music at a party.",
    "D": 'because they both are related to the topic of "Army Style".',
}


@pytest.mark.parametrize(("option", "expected"), [
    (OPTIONS["A"], ("capable_of", "keeping him warm in winter")),
    (OPTIONS["B"], ("is_a", "usb extension cable")),
    (OPTIONS["C"], ("x_want", "play music at a party")),
    (OPTIONS["D"], ("other", "army style")),
    ("because they could both be worn as a bracelet.", ("used_in_body", "a bracelet")),
    ("as a result, the person wants to replace his old charger.", ("x_want", "replace his old charger")),
    ("because nobody knows.", ("other", "nobody knows")),
])
def test_option_templates_are_stripped_to_relation_and_tail(option, expected):
    assert option_to_tail(option) == expected


def test_pick_option_matches_the_pairs_knowledge_not_the_shared_template_words():
    emb = HashingEmbedder()
    # The knowledge shares the template relation (capable_of) with option A, but its content is option B's.
    know = Knowledge(kept=[("capable_of", "usb extension cable")], generated=[], product_intents=[])
    assert pick_option(emb, OPTIONS, know, "tail_kept") == "B"


def test_pick_option_falls_back_along_the_matchers_sources():
    emb = HashingEmbedder()
    know = Knowledge(kept=[], generated=[("x_want", "play music at a party")], product_intents=[])
    assert pick_option(emb, OPTIONS, know, "tail_kept") is None  # nothing kept: the caller guesses
    assert pick_option(emb, OPTIONS, know, "tail_kept_generated") == "C"
    assert set(MATCHERS) >= {"sentence_kept", "tail_kept", "tail_kept_generated"}


def test_relation_bonus_breaks_a_tie_towards_the_same_relation():
    emb = HashingEmbedder()
    opts = {"A": "because they both are capable of cooking", "B": "because the person wants cooking"}
    know = Knowledge(kept=[("x_want", "cooking")], generated=[], product_intents=[])
    assert pick_option(emb, opts, know, "tail_rel_kept") == "B"


def test_wilson_interval_brackets_the_proportion_and_narrows_with_n():
    lo, hi = wilson_interval(30, 100)
    assert lo < 0.30 < hi
    lo2, hi2 = wilson_interval(300, 1000)
    assert hi2 - lo2 < hi - lo
    assert wilson_interval(0, 0) == (0.0, 0.0)


def test_mcnemar_counts_discordant_pairs_and_is_significant_only_when_lopsided():
    a = [True] * 20 + [False] * 5 + [True] * 50
    b = [False] * 20 + [True] * 5 + [True] * 50
    t = mcnemar_exact(a, b)
    assert (t["only_a"], t["only_b"]) == (20, 5)
    assert t["p_value"] < 0.01
    assert mcnemar_exact([True, False], [False, True])["p_value"] == 1.0
    d, lo, hi = paired_difference(a, b)
    assert d == pytest.approx(15 / 75) and lo < d < hi
    with pytest.raises(ValueError):
        mcnemar_exact([True], [True, False])


def test_head_matcher_adds_the_pairs_titles_to_its_knowledge():
    emb = HashingEmbedder()
    opts = {"A": "because they both are capable of keeping him warm.",
            "B": "because they both are a type of coax cable splitter."}
    # The generated knowledge says nothing useful; the pair's titles decide.
    know = Knowledge(kept=[], generated=[("used_for_event", "party")], product_intents=[],
                     head="BAMF 2-Way Coax Cable Splitter ; F Type Coax Terminator")
    assert pick_option(emb, opts, know, "head_tail_kept_generated") == "B"
    assert pick_option(emb, opts, Knowledge(kept=[], generated=[], product_intents=[], head="x"),
                       "head_tail_kept_generated") is None  # no knowledge: the caller guesses
