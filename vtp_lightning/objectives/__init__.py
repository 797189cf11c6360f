"""One mixin per objective, plus the base they plug into."""

from vtp_lightning.objectives.base import TokenizerModule
from vtp_lightning.objectives.contrastive import ContrastiveMixin
from vtp_lightning.objectives.mim import MIMMixin
from vtp_lightning.objectives.objective import Objective, ObjectiveOutput
from vtp_lightning.objectives.reconstruction import ReconstructionMixin
from vtp_lightning.objectives.self_distillation import SelfDistillationMixin
from vtp_lightning.objectives.ssl_views import SSLViewsMixin

__all__ = [
    "ContrastiveMixin",
    "MIMMixin",
    "Objective",
    "ObjectiveOutput",
    "ReconstructionMixin",
    "SSLViewsMixin",
    "SelfDistillationMixin",
    "TokenizerModule",
]
