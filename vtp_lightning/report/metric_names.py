"""What each logged metric is called on a plot, and which way is better.

Labels name the feature extractor, because a Fréchet distance on a small Fashion-MNIST classifier's
features (``*_fmnist``) is not FID and must never be read as one: ``eval/gfid`` is
"gFID (Inception)", ``eval/gfd_fmnist`` is "gFD (fmnist-net features)".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from vtp_lightning.metric_names import EVAL_PREFIX, INCEPTION, distance_metric_name, generation_metric_names

COMPUTE_PREFIX = "compute/"
FLOPS = "compute/flops"
SAMPLES = "compute/samples"
WALL_TIME = "compute/wall_time_s"

# how a ``*_<extractor>`` suffix reads on an axis
EXTRACTORS = {"fmnist": "fmnist-net features"}

# what the callbacks log under the Inception network's names, plus the extractor-free ones
_GENERATION = generation_metric_names(INCEPTION)
_FIXED: dict[str, tuple[str, bool | None]] = {
    _GENERATION["fd"]: ("gFID (Inception)", True),
    f"{EVAL_PREFIX}{distance_metric_name('r', INCEPTION)}": ("rFID (Inception)", True),
    "eval/psnr": ("PSNR (dB)", False),
    "eval/ssim": ("SSIM", False),
    "eval/lpips": ("LPIPS", True),
    "eval/probe_cls_top1": ("linear probe top-1 (CLS features)", False),
    "eval/probe_latent_top1": ("linear probe top-1 (bottleneck latent)", False),
    "eval/zeroshot_top1": ("zero-shot top-1 (CLIP text tower)", False),
    _GENERATION["dit_loss"]: ("gFID-protocol DiT final loss", True),
    _GENERATION["class_agreement"]: ("class agreement of class-conditional samples", False),
    _GENERATION["fd_inf"]: ("gFID∞ (Inception, extrapolated to N = ∞)", True),
    _GENERATION["kd"]: ("gKID (Inception)", True),
    _GENERATION["kd_se"]: ("gKID standard error (Inception)", None),
    FLOPS: ("training FLOPs (measured, cumulative)", None),
    SAMPLES: ("training samples seen", None),
    WALL_TIME: ("training wall time (s)", None),
}
_DERIVED = re.compile(r"^eval/(?P<kind>[rg])(?P<what>fd|kd)_(?P<extractor>[a-z0-9]+)(?P<suffix>_inf|_se)?$")

# extractor names are lower-case letters and digits, so gfd_fmnist_inf / gkd_fmnist are not gFD
GENERATION_PATTERN = re.compile(r"^eval/(gfid|gfd_[a-z0-9]+)$")
RECONSTRUCTION_PATTERN = re.compile(r"^eval/(rfid|rfd_[a-z0-9]+)$")
UNDERSTANDING = ("eval/probe_cls_top1", "eval/probe_latent_top1", "eval/zeroshot_top1")
# column order in tables and bar charts; other eval metrics follow alphabetically
PREFERRED_ORDER = ("generation", "reconstruction", "eval/psnr", "eval/ssim", "eval/lpips", *UNDERSTANDING)


def metric_label(name: str) -> str:
    """Human name of a metric, naming the feature extractor of distance metrics."""
    if name in _FIXED:
        return _FIXED[name][0]
    match = _DERIVED.match(name)
    if match:
        extractor = match["extractor"]
        features = EXTRACTORS.get(extractor, f"{extractor} features")
        kind = f"{match['kind']}{match['what'].upper()}"
        if match["suffix"] == "_inf":
            return f"{kind}∞ ({features}, extrapolated to N = ∞)"
        if match["suffix"] == "_se":
            return f"{kind} standard error ({features})"
        return f"{kind} ({features})"
    return name.removeprefix(EVAL_PREFIX)


def short_label(name: str) -> str:
    """The metric in a verdict sentence: ``gFD``, ``gFD∞``, ``gKD``, ``gFID``, ``class agreement``."""
    match = _DERIVED.match(name)
    if match:
        return f"{match['kind']}{match['what'].upper()}{'∞' if match['suffix'] == '_inf' else ''}"
    if name == _GENERATION["class_agreement"]:
        return "class agreement"
    return metric_label(name).split(" (")[0]


def lower_is_better(name: str) -> bool | None:
    """True for distances, False for accuracies and fidelity scores, None when unknown."""
    if name in _FIXED:
        return _FIXED[name][1]
    match = _DERIVED.match(name)
    if match:
        return None if match["suffix"] == "_se" else True
    if name.endswith(("top1", "top5", "acc", "accuracy")):
        return False
    if name.endswith("loss"):
        return True
    return None


def axis_label(name: str) -> str:
    """The metric label with its direction, for an axis."""
    direction = lower_is_better(name)
    if direction is None:
        return metric_label(name)
    return f"{metric_label(name)}, {'lower' if direction else 'higher'} is better"


def metric_order(names: Iterable[str]) -> list[str]:
    """Generation first, then reconstruction, pixel fidelity, understanding, then the rest."""

    def rank(name: str) -> tuple[int, str]:
        if GENERATION_PATTERN.match(name):
            return (0, name)
        if RECONSTRUCTION_PATTERN.match(name):
            return (1, name)
        if name in PREFERRED_ORDER:
            return (PREFERRED_ORDER.index(name), name)
        return (len(PREFERRED_ORDER), name)

    return sorted(set(names), key=rank)
