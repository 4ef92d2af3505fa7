from shelfwise.enrich.agreement import normalize, vote


def test_normalize_folds_case_spacing_units_and_synonyms():
    assert normalize("12 Ounce") == normalize("12oz") == normalize(" 12  OZ. ")
    assert normalize("Women's") == normalize("women’s")
    assert normalize("K Cup", {"k cup": "K-Cup"}) == normalize("K-Cup")
    assert normalize("n/a") is None and normalize(None) is None and normalize("  ") is None


def test_vote_agrees_after_normalisation_and_keeps_the_preferred_spelling():
    d = vote("Net content", [("llm", "24 count"), ("kb", "24 Count")], preferred=("kb",))
    assert d.status == "agreed" and d.value == "24 Count"


def test_vote_conflict_and_single_source_check():
    conflict = vote("Brand", [("llm", "K-Cup"), ("kb", "Brewhaus")])
    assert conflict.status == "conflict" and "K-Cup" in conflict.reasons[0]
    single = vote("Brand", [("llm", "Brewhaus"), ("kb", None)])
    assert single.status == "check" and single.value == "Brewhaus"
    alone = vote("Brand", [("llm", "Brewhaus")])
    assert alone.status == "check", "one worker never agrees with itself"
    assert vote("Brand", [("llm", None), ("kb", None)]).status == "empty"


def test_vote_threshold_with_three_workers():
    two_of_three = [("a", "Red"), ("b", "red"), ("c", None)]
    assert vote("Color", two_of_three, threshold=0.6).status == "agreed"
    assert vote("Color", two_of_three, threshold=1.0).status == "check"


def test_an_abstaining_worker_is_no_vote_against():
    both_llms = [("generator", "Brewhaus"), ("generator.alt", "brewhaus"), ("kb", None)]
    assert vote("Brand", both_llms, abstaining=("kb",)).status == "agreed"
    assert vote("Brand", both_llms).status == "check", "without the rule the silent compiled worker blocks"
    one_llm = [("generator", "Brewhaus"), ("generator.alt", None), ("kb", None)]
    assert vote("Brand", one_llm, abstaining=("kb",)).status == "check", "an LLM's null is a vote"


def test_a_lookup_worker_does_not_veto_two_agreeing_readers():
    agreed = [("generator", "Mild Light Roast"), ("generator.alt", "mild light roast"), ("kb", "Traditional Roast")]
    d = vote("Roast type", agreed, abstaining=("kb",), preferred=("kb", "generator"))
    assert d.status == "agreed" and d.value == "Mild Light Roast"
    assert vote("Roast type", agreed).status == "conflict", "a worker that reads the listing is a full vote"
    # With one reader the lookup's other value still makes a conflict; and its agreeing value still counts.
    lone = [("generator", "Mild Light Roast"), ("generator.alt", None), ("kb", "Traditional Roast")]
    assert vote("Roast type", lone, abstaining=("kb",)).status == "conflict"
    backed = [("generator", "Medium Roast"), ("generator.alt", None), ("kb", "medium roast")]
    assert vote("Roast type", backed, abstaining=("kb",), preferred=("kb",)).value == "medium roast"
