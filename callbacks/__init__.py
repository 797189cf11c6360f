"""Lightning callbacks that schedule the evaluation metrics and account for compute.

The maths lives in :mod:`vtp_lightning.metrics`; these decide when to run it and where the
numbers go.
"""

from callbacks.evaluation import EvaluationCallback
from callbacks.generation import GenerationEvaluation
from callbacks.linear_probe import LinearProbeEvaluation
from callbacks.non_finite import NonFiniteGuard
from callbacks.reconstruction import ReconstructionEvaluation
from callbacks.summary import TrainingSummary
from callbacks.zero_shot import ZeroShotEvaluation

__all__ = [
    "EvaluationCallback",
    "GenerationEvaluation",
    "LinearProbeEvaluation",
    "NonFiniteGuard",
    "ReconstructionEvaluation",
    "TrainingSummary",
    "ZeroShotEvaluation",
]
