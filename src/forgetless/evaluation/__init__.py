"""Continual evaluation: accuracy matrices and the metrics read from them."""

from forgetless.evaluation.metrics import (
    average_incremental_accuracy,
    backward_transfer,
    final_accuracy,
    forgetting,
)

__all__ = ["average_incremental_accuracy", "backward_transfer", "final_accuracy", "forgetting"]
