"""Derive the shipped attribute schemas from OA-Mine's TRAIN split (never test.jsonl).

    .venv/bin/python benchmarks/derive_oamine_schemas.py [--data ../shared/data]

Writes ``src/shelfwise/enrich/schemas/oamine.json``: one schema per OA-Mine category with every attribute
seen at least ``--min-count`` times in train, its type (text; numbers stay text because OA-Mine values are
title spans such as "12 oz"), and its most frequent values as examples. Hand-written descriptions say what
each attribute name means, so a small model is not left to guess from the name alone.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

DESCRIPTIONS = {
    "Brand": "the manufacturer or brand name, exactly as written",
    "Sub brand": "the product line under the brand (e.g. the cereal's name)",
    "Model name": "the model or style name of the product",
    "Gender": "who it is made for: Women's, Men's, Unisex, Boys', Girls'",
    "Age": "the age group, e.g. Kids, Adult, Toddler",
    "Age range": "the age range, e.g. Adult, Kids",
    "Color": "the colour or colour name",
    "Size": "the size as written, e.g. 9 M US",
    "Material": "what it is made of",
    "Shoe type": "the kind of shoe, e.g. Sneaker, Boot, Sandal",
    "Sport": "the sport or activity it is made for",
    "Closure": "how it closes, e.g. Lace-up, Slip-on",
    "Closure type": "how it is fastened, e.g. Ear Loop",
    "Net content": "the quantity in the package with its unit, e.g. 12 oz, 100 Count",
    "Volume": "the liquid volume with its unit, e.g. 33.8 Fl Oz",
    "Pack size": "how many packs, e.g. Pack of 6",
    "Item form": "the physical form, e.g. Capsules, Ground, K-Cup, Liquid, Lotion",
    "Flavor": "the flavour as written",
    "Scent": "the scent as written",
    "Roast type": "the roast level, e.g. Medium Roast, Dark Roast",
    "Specialty": "special claims such as Organic, Gluten Free, Fair Trade, Sensitive",
    "Caffeine content": "e.g. Decaf, Caffeinated",
    "Machine type": "the machine it is for, e.g. Keurig",
    "Country": "the country of origin as written",
    "Container type": "the container, e.g. Bag, Can, Tin",
    "Container": "the container, e.g. Box, Bag",
    "Supplement type": "the main nutrient or supplement, e.g. Vitamin D3, Magnesium",
    "Dosage": "the strength per unit, e.g. 1000 mg, 5000 IU",
    "Health benefit": "the claimed benefit, e.g. Immune Support",
    "Diet": "diet claims, e.g. Vegan, Keto",
    "Protection level": "the SPF value as written, e.g. SPF 50",
    "Skin type": "the skin type it is for, e.g. Sensitive Skin",
    "Hair type": "the hair type it is for",
    "Benefit": "the claimed effect, e.g. Moisturizing, Volumizing",
    "Specific uses": "what it is used for, e.g. HE, Baby",
    "Load size": "number of loads, e.g. 64 Loads",
    "Firmness": "bristle firmness, e.g. Soft, Medium",
    "Operation mode": "e.g. Electric, Manual, Sonic",
    "Power source": "e.g. Battery Powered, Rechargeable",
    "Mask type": "e.g. Face Mask, Respirator",
    "Reusability": "e.g. Disposable, Reusable, Washable",
    "Layer": "number of layers, e.g. 3 Ply",
    "Certified grade": "certification, e.g. KN95, N95",
    "Package type": "how it is packaged, e.g. Individually Wrapped",
    "Tea variety": "the kind of tea, e.g. Green Tea, Black Tea, Chamomile",
    "Cereal type": "the kind of cereal, e.g. Granola, Oatmeal",
    "Animal": "the animal it is for",
    "Administration type": "how it is taken, e.g. Chewable",
    "Supply size": "how long the package lasts, e.g. 90 Day Supply",
}


def derive(train: Path, *, min_count: int = 3, examples: int = 6) -> list[dict]:
    attrs: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    values: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    for line in train.read_text().splitlines():
        row = json.loads(line)
        for name, vals in row["target_scores"].items():
            attrs[row["category"]][name] += 1
            for v in vals:
                values[(row["category"], name)][v] += 1
    out = []
    for category in sorted(attrs):
        specs = []
        for name, count in attrs[category].most_common():
            if count < min_count:
                continue
            specs.append({
                "name": name,
                "description": DESCRIPTIONS.get(name, name.lower()),
                "type": "string",
                "examples": [v for v, _ in values[(category, name)].most_common(examples)],
            })
        out.append({"category_path": category, "description": f"OA-Mine {category} (derived from train.jsonl)",
                     "attributes": specs})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--min-count", type=int, default=3)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent.parent / "src/shelfwise/enrich/schemas/oamine.json")
    args = parser.parse_args()
    schemas = derive(args.data / "oa-mine-extractgpt" / "train.jsonl", min_count=args.min_count)
    args.out.write_text(json.dumps(schemas, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(schemas)} schemas to {args.out}")


if __name__ == "__main__":
    main()
