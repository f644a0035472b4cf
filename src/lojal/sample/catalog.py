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
    "en": (0.15, "IE", "Europe/Dublin", "example.com",
           ["Olivia", "James", "Amelia", "Oliver", "Isla", "George", "Ava", "Harry", "Emily", "Noah"]),
}

CONSENT_SOURCES = ["checkout", "newsletter_form", "account_settings", "pos_signup"]

# The sample shop's markets (the shipped config/markets.yaml says the same): country -> (market, currency,
# price factor from NOK, rounding step, ending subtracted). Living plants are not sent abroad to Denmark and
# the euro countries, pet food not to the euro countries: those products have no price there.
MARKETS = {
    "NO": ("norway", "NOK", 1.0, 10.0, 1.0),
    "SE": ("sweden", "SEK", 1.04, 10.0, 1.0),
    "DK": ("denmark", "DKK", 0.65, 5.0, 1.0),
    "IE": ("euro", "EUR", 0.086, 1.0, 0.05),
}
NOT_SOLD = {"denmark": {"Plants"}, "euro": {"Plants", "Pet care"}}

# Category names and product nouns in nb, sv, da (en is the shop's own, above).
CATEGORY_NAMES = {
    "Coffee": ("Kaffe", "Kaffe", "Kaffe"), "Tea": ("Te", "Te", "Te"), "Candles": ("Lys", "Ljus", "Lys"),
    "Skincare": ("Hudpleie", "Hudvård", "Hudpleje"), "Cleaning": ("Rengjøring", "Städ", "Rengøring"),
    "Pet care": ("Dyrepleie", "Djurvård", "Dyrepleje"), "Kitchen": ("Kjøkken", "Kök", "Køkken"),
    "Textiles": ("Tekstiler", "Textilier", "Tekstiler"), "Lighting": ("Belysning", "Belysning", "Belysning"),
    "Tableware": ("Servise", "Porslin", "Service"), "Plants": ("Planter", "Växter", "Planter"),
    "Stationery": ("Papirvarer", "Pappersvaror", "Papirvarer"),
}
NOUN_NAMES = {
    "Espresso beans": ("Espressobønner", "Espressobönor", "Espressobønner"),
    "Filter roast": ("Filterkaffe", "Bryggkaffe", "Filterkaffe"),
    "Cold brew blend": ("Cold brew-blanding", "Cold brew-blandning", "Cold brew-blanding"),
    "Decaf roast": ("Koffeinfri kaffe", "Koffeinfritt kaffe", "Koffeinfri kaffe"),
    "Mocha blend": ("Mokkablanding", "Mockablandning", "Mokkablanding"),
    "Earl Grey": ("Earl Grey", "Earl Grey", "Earl Grey"), "Green sencha": ("Grønn sencha", "Grön sencha", "Grøn sencha"),
    "Rooibos": ("Rooibos", "Rooibos", "Rooibos"), "Chai": ("Chai", "Chai", "Chai"),
    "Nettle tea": ("Brenneslete", "Nässelte", "Brændenældete"),
    "Pillar candle": ("Kubbelys", "Blockljus", "Bloklys"), "Tealight pack": ("Telys", "Värmeljus", "Fyrfadslys"),
    "Scented candle": ("Duftlys", "Doftljus", "Duftlys"), "Taper candles": ("Kronelys", "Kronljus", "Kertelys"),
    "Hand cream": ("Håndkrem", "Handkräm", "Håndcreme"), "Face oil": ("Ansiktsolje", "Ansiktsolja", "Ansigtsolie"),
    "Lip balm": ("Leppepomade", "Läppbalsam", "Læbepomade"), "Body lotion": ("Bodylotion", "Kroppslotion", "Bodylotion"),
    "Soap bar": ("Såpestykke", "Tvål", "Sæbestykke"), "Dish soap": ("Oppvaskmiddel", "Diskmedel", "Opvaskemiddel"),
    "Linen spray": ("Linspray", "Linnespray", "Linnedspray"), "Wool wash": ("Ullvask", "Ulltvätt", "Uldvask"),
    "Surface cleaner": ("Overflaterens", "Ytrengöring", "Overfladerens"), "Dog treats": ("Hundegodbiter", "Hundgodis", "Hundegodbidder"),
    "Cat food": ("Kattemat", "Kattmat", "Kattemad"), "Pet shampoo": ("Dyresjampo", "Djurschampo", "Dyreshampoo"),
    "Chef's knife": ("Kokkekniv", "Kockkniv", "Kokkekniv"), "Cutting board": ("Skjærefjøl", "Skärbräda", "Skærebræt"),
    "Linen apron": ("Forkle i lin", "Förkläde i linne", "Forklæde i hør"), "Cast iron pan": ("Støpejernspanne", "Gjutjärnspanna", "Støbejernspande"),
    "Coffee grinder": ("Kaffekvern", "Kaffekvarn", "Kaffekværn"), "Wool throw": ("Ullpledd", "Ullpläd", "Uldplaid"),
    "Linen cushion": ("Linpute", "Linnekudde", "Hørpude"), "Bath towel": ("Badehåndkle", "Badlakan", "Badehåndklæde"),
    "Table runner": ("Bordløper", "Bordslöpare", "Bordløber"), "Table lamp": ("Bordlampe", "Bordslampa", "Bordlampe"),
    "Pendant light": ("Taklampe", "Taklampa", "Pendel"), "Lantern": ("Lykt", "Lykta", "Lygte"),
    "Reading light": ("Leselampe", "Läslampa", "Læselampe"), "Stoneware mug": ("Steintøykopp", "Stengodsmugg", "Stentøjskrus"),
    "Dinner plate": ("Middagstallerken", "Mattallrik", "Middagstallerken"), "Glass carafe": ("Glasskaraffel", "Glaskaraff", "Glaskaraffel"),
    "Serving bowl": ("Serveringsbolle", "Serveringsskål", "Serveringsskål"), "Monstera": ("Monstera", "Monstera", "Monstera"),
    "Olive tree": ("Oliventre", "Olivträd", "Oliventræ"), "Fern": ("Bregne", "Ormbunke", "Bregne"),
    "Herb kit": ("Urtesett", "Örtkit", "Kryddurtesæt"), "Notebook": ("Notatbok", "Anteckningsbok", "Notesbog"),
    "Wall calendar": ("Veggkalender", "Väggkalender", "Vægkalender"), "Fountain pen": ("Fyllepenn", "Reservoarpenna", "Fyldepen"),
    "Card set": ("Kortsett", "Kortset", "Kortsæt"),
}
TRANSLATED_LOCALES = ("nb", "sv", "da")
