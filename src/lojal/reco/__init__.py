"""Recommendation stage: strategies fitted on purchase history, business rules, reasons, evaluation."""

from lojal.reco.recommender import Blend, Recommendation, Recommender, fit_on_history, fit_recommender
from lojal.reco.spec import RecommendationSpec, SlotSpec
from lojal.reco.strategies import RecoParams

__all__ = ["Blend", "Recommendation", "Recommender", "RecoParams", "RecommendationSpec", "SlotSpec",
           "fit_on_history", "fit_recommender"]
