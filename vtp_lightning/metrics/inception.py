"""The ``inception`` extractor: 2048-d InceptionV3 pool features, the only source of a metric named FID.

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` (the TensorFlow FID graph ported to
PyTorch), which resizes to 299x299 with TensorFlow 1.x bilinear interpolation (no antialiasing) and
takes uint8 pixels, exactly as the reference FID code does; our ``[0, 1]`` floats are rounded to
uint8 first, like saving PNGs. That is what makes the numbers comparable with published FIDs
(torchmetrics' default ``antialias=True`` resize is not).

Weights never come from the network: the file is a local path (argument, or env
``VTP_INCEPTION_WEIGHTS``), its SHA-256 must start with ``6726825d`` and it is read with
``weights_only=True``. Anything else raises :class:`~vtp_lightning.errors.WeightsError` saying what to
fix; there is no random-weight fallback.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from vtp_lightning.errors import WeightsError
from vtp_lightning.metrics.feature_extractor import FeatureExtractor
from vtp_lightning.metrics.file_hash import sha256_of_file

INCEPTION_WEIGHTS_ENV = "VTP_INCEPTION_WEIGHTS"
INCEPTION_SHA256_PREFIX = "6726825d"
INCEPTION_WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
INCEPTION_FEATURE_DIM = 2048
_FORCE_WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"

_WHERE_TO_GET = (
    f"download {INCEPTION_WEIGHTS_URL} (torch-fidelity; pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
    f"is the same file) on a machine with internet and point {INCEPTION_WEIGHTS_ENV} or the "
    "`inception_weights` setting at it"
)


class _KeyMismatch(Exception):
    def __init__(self, missing: list[str], unexpected: list[str]) -> None:
        super().__init__()
        self.missing, self.unexpected = missing, unexpected


class _DoesNotFit(Exception):
    """The file holds tensors, but not ones the network can take (not a state dict, wrong shapes)."""


class _CheckedInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's network whose weight loading names missing and unexpected keys."""

    def load_state_dict(
        self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False
    ):
        if not isinstance(state_dict, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()
        ):
            raise _DoesNotFit("it does not hold a state dict of tensors")
        try:
            result = super().load_state_dict(state_dict, strict=False, assign=assign)
        except RuntimeError as error:  # a shape mismatch
            raise _DoesNotFit(str(error)) from None
        if result.missing_keys or result.unexpected_keys:
            raise _KeyMismatch(list(result.missing_keys), list(result.unexpected_keys))
        return result


@contextmanager
def _torch_loads_weights_only() -> Iterator[None]:
    """Every ``torch.load`` inside reads tensors only, even one that turns ``weights_only`` off
    (torch-fidelity's weight loading does): torch's own switch, ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``."""
    previous = os.environ.get(_FORCE_WEIGHTS_ONLY)
    os.environ[_FORCE_WEIGHTS_ONLY] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[_FORCE_WEIGHTS_ONLY]
        else:
            os.environ[_FORCE_WEIGHTS_ONLY] = previous


def resolve_inception_weights(weights: str | Path | None = None) -> Path:
    """The weights path from the argument, else from ``VTP_INCEPTION_WEIGHTS``; it must exist."""
    chosen = weights if weights else os.environ.get(INCEPTION_WEIGHTS_ENV)
    if not chosen:
        raise WeightsError(f"FID needs the InceptionV3 weights file and none was given: {_WHERE_TO_GET}.")
    path = Path(chosen).expanduser()
    if not path.is_file():
        source = "argument `inception_weights`" if weights else f"env {INCEPTION_WEIGHTS_ENV}"
        raise WeightsError(f"Inception weights file {path} (from {source}) does not exist: {_WHERE_TO_GET}.")
    return path


def verify_inception_weights(path: Path) -> str:
    """SHA-256 of the file, after checking it starts with the published prefix."""
    actual = sha256_of_file(path)
    if not actual.startswith(INCEPTION_SHA256_PREFIX):
        raise WeightsError(
            f"Inception weights file {path} has SHA-256 {actual}, expected one starting with "
            f"{INCEPTION_SHA256_PREFIX}: it is not the FID InceptionV3 file; {_WHERE_TO_GET}."
        )
    return actual


def _describe(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > limit else ''})"


def load_inception_network(path: Path) -> FeatureExtractorInceptionV3:
    """torch-fidelity's InceptionV3 (2048-d pool output) holding the weights of a verified file,
    which it reads itself, tensors only (a pickled payload is refused before it can run)."""
    try:
        with _torch_loads_weights_only():
            return _CheckedInceptionV3(
                "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
            )
    except _KeyMismatch as mismatch:
        raise WeightsError(
            f"Inception weights file {path} does not fit torch-fidelity's InceptionV3: missing keys "
            f"{_describe(mismatch.missing)}, unexpected keys {_describe(mismatch.unexpected)}"
        ) from None
    except _DoesNotFit as error:
        raise WeightsError(
            f"Inception weights file {path} does not fit torch-fidelity's InceptionV3: {error}"
        ) from None
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise WeightsError(
            f"Inception weights file {path} cannot be read as a PyTorch state dict: {str(error).splitlines()[0]}"
        ) from None


class InceptionFeatureExtractor(FeatureExtractor):
    """2048-d InceptionV3 pool3 features of ``[0, 1]`` images; its distances are logged as FID."""

    name = "inception"
    feature_dim = INCEPTION_FEATURE_DIM

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        path = resolve_inception_weights(weights)
        self.weights_sha256 = verify_inception_weights(path)
        self.weights_path = path
        self.network = load_inception_network(path)
        self.freeze()

    @torch.no_grad()
    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        self.check_images(images01)
        pixels = (images01.clamp(0, 1) * 255).round().to(torch.uint8)
        return self.network(pixels)[0]
