"""The sample shop's catalogue: categories, product words and names per locale."""

from __future__ import annotations

# category -> (re-purchase cycle in days or None when not a consumable, median price NOK, product nouns)
CATEGORIES: dict[str, tuple[int | None, float, list[str]]] = {
    "Coffee": (28, 149.0, ["Espresso beans", "Filter roast", "Cold brew blend", "Decaf roast", "Mocha blend"]),
    "Tea": (40, 119.0, ["Earl Grey", "Green sencha", "Rooibos", "Chai", "Nettle tea"]),
    "Candles": (45, 199.0, ["Pillar candle", "Tealight pack", "Scented candle", "Taper candles"]),
    "Skincare": (50, 259.0, ["Hand cream", "Face oil", "Lip balm", "Body lotion", "Soap bar"]),
    "Cleaning": (60, 89.0, ["Dish soap", "Linen spray", "Wool wash", "Surface cleaner"]),
    "Pet care": (30, 229.0, ["Dog treats", "Cat food", "Pet shampoo"]),
    "Kitchen": (None, 349.0, ["Chef's knife", "Cutting board", "Linen apron", "Cast iron pan", "Coffee grinder"]),
    "Textiles": (None, 499.0, ["Wool throw", "Linen cushion", "Bath towel", "Table runner"]),
    "Lighting": (None, 899.0, ["Table lamp", "Pendant light", "Lantern", "Reading light"]),
    "Tableware": (None, 299.0, ["Stoneware mug", "Dinner plate", "Glass carafe", "Serving bowl"]),
    "Plants": (None, 249.0, ["Monstera", "Olive tree", "Fern", "Herb kit"]),
    "Stationery": (None, 129.0, ["Notebook", "Wall calendar", "Fountain pen", "Card set"]),
}

# Typical gross margin (share of price) per category, for the recommendations' margin boost.
CATEGORY_MARGINS: dict[str, float] = {
    "Coffee": 0.30, "Tea": 0.35, "Candles": 0.55, "Skincare": 0.50, "Cleaning": 0.30, "Pet care": 0.25,
    "Kitchen": 0.40, "Textiles": 0.55, "Lighting": 0.45, "Tableware": 0.50, "Plants": 0.45, "Stationery": 0.55,
}

ADJECTIVES = ["Fjord", "Nordlys", "Birch", "Skog", "Havn", "Lyng", "Mose", "Vinter", "Sommer", "Klar"]

LOCALES = {
    # locale: (share of customers, country, time zone, e-mail domain, first names)
    "nb": (0.40, "NO", "Europe/Oslo", "example.no",
           ["Åse", "Bjørn", "Ingrid", "Øystein", "Kari", "Håkon", "Solveig", "Jørgen", "Sigrid", "Ærlend", "Nora", "Mats"]),
    "sv": (0.25, "SE", "Europe/Stockholm", "example.se",
           ["Åsa", "Björn", "Märta", "Göran", "Linnéa", "Sören", "Elsa", "Örjan", "Maja", "Håkan"]),
    "da": (0.20, "DK", "Europe/Copenhagen", "example.dk",
           ["Søren", "Mette", "Jørgen", "Åge", "Freja", "Kåre", "Line", "Mads", "Birgitte", "Øjvind"]),
    "en": (0.15, "GB", "Europe/London", "example.com",
           ["Olivia", "James", "Amelia", "Oliver", "Isla", "George", "Ava", "Harry", "Emily", "Noah"]),
}

CONSENT_SOURCES = ["checkout", "newsletter_form", "account_settings", "pos_signup"]
