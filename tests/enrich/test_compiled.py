from shelfwise.enrich.compiled import CompiledExtractor, value_pattern
from shelfwise.enrich.drafts import value_drafts
from shelfwise.store import AttributeSchema, AttributeSpec, Listing

SCHEMA = AttributeSchema(category_path="Shoes", attributes=[AttributeSpec(name=n) for n in
                                                            ("Brand", "Gender", "Size", "Color")])


def test_gazetteer_and_patterns_longest_match_and_one_attribute_per_span():
    gaz = {"Brand": {"ellie shoes": "Ellie Shoes", "ellie": "Ellie"}, "Gender": {"women's": "Women's"},
           "Color": {"red": "Red"}}
    pats = {"Size": [value_pattern("14 M US")]}
    ext = CompiledExtractor(lambda c, a: gaz.get(a, {}), lambda c, a: pats.get(a, []))
    out = ext.extract(Listing(id="1", title="Ellie Shoes Women's 8400, Red Patent, 9.5 M US", category_path="Shoes"),
                      SCHEMA, [])
    assert out.values == {"Brand": "Ellie Shoes", "Gender": "Women's", "Size": "9.5 M US", "Color": "Red"}
    folded = CompiledExtractor(lambda c, a: {"k cup": "K-Cup"} if a == "Brand" else {})
    assert folded.extract(Listing(id="2", title="Pods K-Cup x", category_path="Shoes"), SCHEMA, []).values["Brand"] == "K-Cup"


def test_value_drafts_only_for_title_spans():
    assert value_drafts("Shoes", "Brand", "Nike", "Adidas Samba") == []
    drafts = value_drafts("Shoes", "Size", "9 m us", "Crocs Clog, 9 M US", text="Sizes end in M US in Shoes.")
    assert drafts[0].normalize == {"9 M US": "9 M US"}
    assert drafts[1].examples[0].startswith("pattern:")
    assert drafts[2].text.startswith("Sizes")
