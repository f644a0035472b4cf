"""Segment conditions checked against the shop's catalogue: a `bought` condition naming a category
or SKU the store has never had matches nobody, which is almost always a typo."""

from __future__ import annotations

from collections.abc import Collection

from lojal.errors import Problem
from lojal.segments.loader import SegmentSet
from lojal.segments.model import Bought, nodes_of
from lojal.yamlfile import did_you_mean


def catalogue_problems(segment_set: SegmentSet, categories: Collection[str], skus: Collection[str]) -> list[Problem]:
    """Warnings for categories and SKUs in `bought` conditions that no product has."""
    problems = []
    known_categories, known_skus = sorted(set(categories)), set(skus)
    for segment in segment_set:
        for node in nodes_of(segment.where, Bought):
            for category in node.categories:
                if category not in known_categories:
                    problems.append(_unknown(segment.path, node, f"category '{category}'",
                                             did_you_mean(category, known_categories)))
            for sku in node.skus:
                if sku not in known_skus:
                    problems.append(_unknown(segment.path, node, f"SKU '{sku}'", _close_sku(sku, known_skus)))
    return problems


def _unknown(path: str, node: Bought, what: str, hint: str) -> Problem:
    return Problem(path, node.line, node.col, f"no product in the store has {what}{hint}; this condition "
                   "matches nobody until one does", severity="warning")


def _close_sku(sku: str, known: set[str]) -> str:
    # difflib over a whole catalogue is slow; SKUs that differ in case or spacing are the usual slip.
    folded = {s.replace(" ", "").upper(): s for s in known}
    match = folded.get(sku.replace(" ", "").upper())
    return f" (did you mean '{match}'?)" if match else ""
