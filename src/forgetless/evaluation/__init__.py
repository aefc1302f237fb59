"""Continual evaluation: accuracy matrices, the metrics read from them, and baselines."""

from forgetless.evaluation.metrics import (
    average_incremental_accuracy,
    backward_transfer,
    final_accuracy,
    forgetting,
    min_accuracy,
    stability_gap,
    worst_case_accuracy,
)

__all__ = [
    "average_incremental_accuracy",
    "backward_transfer",
    "final_accuracy",
    "forgetting",
    "min_accuracy",
    "stability_gap",
    "worst_case_accuracy",
]
