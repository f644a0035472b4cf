"""Segments: marketers' `segments/*.yaml` parsed into typed condition trees and evaluated as masks.

Parsing (model.py, loader.py) is separate from evaluation (evaluate.py), so the same trees can be
translated to SQL later. Consent is not part of any segment: `lojal.audience` applies it (and the
suppression list) to every send, and no segment file can switch it off.
"""

from lojal.segments.evaluate import evaluate_segments
from lojal.segments.explain import Explanation, ExplainStep, explain
from lojal.segments.loader import SegmentSet, check_segments, load_segments
from lojal.segments.model import Segment

__all__ = ["SegmentSet", "Segment", "load_segments", "check_segments", "evaluate_segments", "explain",
           "Explanation", "ExplainStep"]
