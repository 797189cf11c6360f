"""Loss functions as small nn.Modules (no Lightning): CLIP/SigLIP, DINO, iBOT, KoLeo."""

from vtp_lightning.losses.contrastive import ClipLoss, SigLipLoss
from vtp_lightning.losses.dino import DINOLoss
from vtp_lightning.losses.ibot import IBOTPatchLoss
from vtp_lightning.losses.koleo import KoLeoLoss
from vtp_lightning.losses.teacher_targets import CenteredSoftmax, SinkhornKnopp, target_entropies

__all__ = [
    "CenteredSoftmax",
    "ClipLoss",
    "DINOLoss",
    "IBOTPatchLoss",
    "KoLeoLoss",
    "SigLipLoss",
    "SinkhornKnopp",
    "target_entropies",
]
