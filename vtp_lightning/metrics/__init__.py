"""Evaluation maths, free of Lightning: Fréchet / kernel distances with pluggable feature extractors,
cached reference statistics, PSNR / SSIM, the linear probe and zero-shot classification.

The callbacks in ``callbacks/`` decide when to run these; everything here is a plain function,
dataclass or frozen ``nn.Module`` that a test can call directly.
"""

from vtp_lightning.metrics.feature_extractor import FeatureExtractor
from vtp_lightning.metrics.feature_statistics import FeatureStatistics
from vtp_lightning.metrics.fmnist_extractor import FashionMNISTFeatureExtractor
from vtp_lightning.metrics.frechet import frechet_distance, frechet_distance_from_statistics
from vtp_lightning.metrics.image_quality import psnr_per_image, ssim_per_image
from vtp_lightning.metrics.inception import INCEPTION_WEIGHTS_ENV, InceptionFeatureExtractor
from vtp_lightning.metrics.kernel_distance import KernelDistanceEstimate, kernel_distance_with_error
from vtp_lightning.metrics.linear_probe import LinearProbeResult, linear_probe
from vtp_lightning.metrics.reference_statistics import (
    CACHE_DIR_ENV,
    ReferenceStatisticsCache,
    ReferenceStatisticsKey,
    cached_reference_statistics,
    compute_feature_statistics,
    default_cache_dir,
)
from vtp_lightning.metrics.registry import available_feature_extractors, build_feature_extractor
from vtp_lightning.metrics.zero_shot import (
    DEFAULT_TEMPLATES,
    build_zero_shot_classifier,
    zero_shot_logits,
    zero_shot_top1,
)

__all__ = [
    "CACHE_DIR_ENV",
    "DEFAULT_TEMPLATES",
    "INCEPTION_WEIGHTS_ENV",
    "FashionMNISTFeatureExtractor",
    "FeatureExtractor",
    "FeatureStatistics",
    "InceptionFeatureExtractor",
    "KernelDistanceEstimate",
    "LinearProbeResult",
    "ReferenceStatisticsCache",
    "ReferenceStatisticsKey",
    "available_feature_extractors",
    "build_feature_extractor",
    "build_zero_shot_classifier",
    "cached_reference_statistics",
    "compute_feature_statistics",
    "default_cache_dir",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "kernel_distance_with_error",
    "linear_probe",
    "psnr_per_image",
    "ssim_per_image",
    "zero_shot_logits",
    "zero_shot_top1",
]
