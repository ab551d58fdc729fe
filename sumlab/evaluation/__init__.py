"""Evaluation: ROUGE with multi-reference scoring, bootstrap CIs and paired tests; predictions files; results."""

from sumlab.evaluation.rouge import score_predictions

__all__ = ["score_predictions"]
