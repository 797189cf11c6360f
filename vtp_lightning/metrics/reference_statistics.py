"""Real-set feature statistics, computed once and cached on disk.

rFID / gFID compare against the statistics of the same real images at every evaluation; with
Inception on CPU (about 4 images/s) recomputing them would dominate. The cache key covers
everything that changes the statistics: the caller's data identifier (dataset, split, transform),
the extractor's name and weights hash, the number of images and the image size. Files live in
``$VTP_CACHE_DIR/fid_stats`` (default ``~/.cache/vtp_lightning/fid_stats``) as safetensors holding
the raw sums of :class:`FeatureStatistics`, with the key in the metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from vtp_lightning.metrics.feature_extractor import FeatureExtractor
from vtp_lightning.metrics.feature_statistics import FeatureStatistics

CACHE_DIR_ENV = "VTP_CACHE_DIR"
_SCALAR = (str, int, float, bool, type(None), Path)


def default_cache_dir() -> Path:
    """``$VTP_CACHE_DIR/fid_stats``, else ``~/.cache/vtp_lightning/fid_stats``."""
    root = os.environ.get(CACHE_DIR_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "vtp_lightning"
    return base / "fid_stats"


def _describe(source: Any) -> str:
    """Class name plus the source's simple settings (paths, split): the same data gives the same text.

    Paths count as settings (as text), and so do public lists of them (e.g. WebDataset shard URLs,
    as a digest): two folders or shard sets must never share reference statistics.
    """
    if source is None:
        return "default"
    simple: dict[str, Any] = {}
    for key, value in sorted(vars(source).items()):
        if isinstance(value, list | tuple) and not key.startswith("_"):
            if not all(isinstance(item, _SCALAR) for item in value):
                continue
            text = json.dumps([item if item is None else str(item) for item in value])
            value = f"{len(value)} items, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}"
        elif not isinstance(value, _SCALAR):
            continue
        simple[key] = str(value) if isinstance(value, Path) else value
    return f"{type(source).__qualname__}{simple}"


def data_id(datamodule: Any, split: str, num_images: int) -> str:
    """A stable name for the real images reference statistics are computed on (a datamodule with
    ``source(split)``, ``image_size`` and ``seed``, like ``VTPDataModule``): the cache key's data part."""
    source = datamodule.source(split) if hasattr(datamodule, "source") else None
    size = getattr(datamodule, "image_size", "?")
    seed = getattr(datamodule, "seed", 0)
    return f"{_describe(source)}|split={split}|n={num_images}|size={size}|order_seed={seed}"


@dataclass(frozen=True)
class ReferenceStatisticsKey:
    """Everything the reference statistics depend on."""

    data_id: str
    extractor_name: str
    weights_sha256: str
    num_images: int
    image_size: int

    @classmethod
    def for_extractor(
        cls, data_id: str, extractor: FeatureExtractor, num_images: int, image_size: int
    ) -> ReferenceStatisticsKey:
        return cls(data_id, extractor.name, extractor.weights_sha256, num_images, image_size)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:24]

    def file_name(self) -> str:
        return f"{self.extractor_name}-{self.digest()}.safetensors"


@torch.no_grad()
def compute_feature_statistics(
    extractor: FeatureExtractor, batches: Iterable[torch.Tensor]
) -> FeatureStatistics:
    """Statistics of the extractor's features over batches of ``[0, 1]`` images."""
    device = next(extractor.parameters()).device
    stats = FeatureStatistics(extractor.feature_dim, device=device)
    for images01 in batches:
        stats.update(extractor(images01.to(device)))
    return stats


class ReferenceStatisticsCache:
    """Loads statistics by key, or computes and stores them on a miss."""

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()

    def path_for(self, key: ReferenceStatisticsKey) -> Path:
        return self.cache_dir / key.file_name()

    def load(self, key: ReferenceStatisticsKey) -> FeatureStatistics | None:
        """Cached statistics for ``key``, or ``None`` when absent, unreadable or made for another key."""
        tensors = _read_keyed(self.path_for(key), key, {"feature_sum", "outer_sum", "count"})
        if tensors is None:
            return None
        return FeatureStatistics.from_tensors(tensors["feature_sum"], tensors["outer_sum"], tensors["count"])

    def save(self, key: ReferenceStatisticsKey, stats: FeatureStatistics) -> Path:
        """Write atomically (temporary file + rename), so concurrent ranks never read half a file."""
        return self._write(self.path_for(key), key, stats.tensors())

    def features_path_for(self, key: ReferenceStatisticsKey) -> Path:
        return self.cache_dir / f"features-{key.file_name()}"

    def load_features(self, key: ReferenceStatisticsKey) -> torch.Tensor | None:
        """Cached reference features ``(N, D)`` for ``key`` (kernel distances need the features)."""
        tensors = _read_keyed(self.features_path_for(key), key, {"features"})
        return None if tensors is None else tensors["features"]

    def save_features(self, key: ReferenceStatisticsKey, features: torch.Tensor) -> Path:
        return self._write(self.features_path_for(key), key, {"features": features})

    @staticmethod
    def _write(path: Path, key: ReferenceStatisticsKey, tensors: dict[str, torch.Tensor]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
        os.close(handle)
        try:
            save_file(tensors, temporary, metadata={"key": key.to_json()})
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        return path

    def get_or_compute(
        self, key: ReferenceStatisticsKey, compute: Callable[[], FeatureStatistics]
    ) -> FeatureStatistics:
        """Cached statistics, or ``compute()`` them once and cache the result."""
        cached = self.load(key)
        if cached is not None:
            return cached
        stats = compute()
        self.save(key, stats)
        return stats


def cached_reference_statistics(
    extractor: FeatureExtractor,
    data_id: str,
    batches: Callable[[], Iterable[torch.Tensor]],
    num_images: int,
    image_size: int,
    cache_dir: str | Path | None = None,
) -> FeatureStatistics:
    """Reference statistics of the real images that ``batches()`` yields, from the cache when present.

    ``batches`` is a callable so that nothing is loaded on a cache hit. ``data_id`` must name the
    data precisely (e.g. ``"fashion_mnist_slice:test"``): it is the caller's promise that the same
    id always means the same images.
    """
    key = ReferenceStatisticsKey.for_extractor(data_id, extractor, num_images, image_size)
    cache = ReferenceStatisticsCache(cache_dir)
    return cache.get_or_compute(key, lambda: compute_feature_statistics(extractor, batches()))


@torch.no_grad()
def cached_reference_features(
    extractor: FeatureExtractor,
    data_id: str,
    batches: Callable[[], Iterable[torch.Tensor]],
    num_images: int,
    image_size: int,
    cache_dir: str | Path | None = None,
) -> torch.Tensor:
    """The features ``(N, D)`` (float64, CPU) of the real images ``batches()`` yields, cached like
    :func:`cached_reference_statistics` under the same key in a file of its own."""
    key = ReferenceStatisticsKey.for_extractor(data_id, extractor, num_images, image_size)
    cache = ReferenceStatisticsCache(cache_dir)
    cached = cache.load_features(key)
    if cached is not None:
        return cached
    device = next(extractor.parameters()).device
    features = torch.cat([extractor(images01.to(device)).double().cpu() for images01 in batches()])
    cache.save_features(key, features)
    return features


def _read_keyed(path: Path, key: ReferenceStatisticsKey, names: set[str]) -> dict[str, torch.Tensor] | None:
    """The tensors of a cache file written for ``key`` with exactly ``names``; None when absent,
    unreadable or made for another key (the cache is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            stored_key = (f.metadata() or {}).get("key")
        tensors = load_file(str(path))
    except (SafetensorError, OSError):
        return None
    if stored_key != key.to_json() or set(tensors) != names:
        return None
    return tensors
