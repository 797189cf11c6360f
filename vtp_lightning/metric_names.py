"""The names evaluations log their distances under, written once (no heavy imports: the report reads them).

A distance computed with feature extractor ``x`` is ``{kind}fd_{x}`` (``rfd_fmnist``, ``gfd_fmnist``),
a kernel distance ``{kind}kd_{x}``; ``kind`` is ``r`` (reconstruction) or ``g`` (generation). Only
the Inception network's are called ``{kind}fid`` / ``{kind}kid``: a number is called FID only when
it was computed with the real Inception weights and is comparable with published FIDs.
"""

from __future__ import annotations

EVAL_PREFIX = "eval/"
INCEPTION = "inception"
GENERATION_FIELDS = ("fd", "fd_inf", "kd", "kd_se", "class_agreement", "dit_loss")
"""What one generation evaluation measures (``protocol_eval`` writes these as its row fields)."""


def distance_metric_name(kind: str, extractor: str) -> str:
    """``gfd_fmnist``, ``rfid``: the Fréchet distance's name for extractor ``extractor``."""
    return f"{kind}fid" if extractor == INCEPTION else f"{kind}fd_{extractor}"


def kernel_metric_name(kind: str, extractor: str) -> str:
    """``gkd_fmnist``, ``gkid``: the kernel distance's (KID's statistic) name."""
    return f"{kind}kid" if extractor == INCEPTION else f"{kind}kd_{extractor}"


def generation_metric_names(extractor: str) -> dict[str, str]:
    """Each of :data:`GENERATION_FIELDS` -> the name the generation callback logs it under."""
    frechet, kernel = distance_metric_name("g", extractor), kernel_metric_name("g", extractor)
    return {
        "fd": f"{EVAL_PREFIX}{frechet}",
        "fd_inf": f"{EVAL_PREFIX}{frechet}_inf",
        "kd": f"{EVAL_PREFIX}{kernel}",
        "kd_se": f"{EVAL_PREFIX}{kernel}_se",
        "class_agreement": f"{EVAL_PREFIX}gen_class_agreement",
        "dit_loss": f"{EVAL_PREFIX}gen_dit_loss",
    }
