"""An encode/decode model rebuilt from a recorded architecture only when the weights agree with it.

``config.json`` (``from_pretrained``) and a checkpoint's recorded architecture (``vtp-export``,
``load_autoencoder``) are trusted by nothing: a config saying encoder ``depth: 2`` over weights holding
6 blocks loaded the first 2 and computed something else, int8 weights were cast silently, NaN weights
loaded, and ``heads: 0`` or ``patch_size: 0`` ended in ``ZeroDivisionError``. :func:`build_checked`
checks, in order, each ending in one :class:`CheckpointError` naming the key:

1. the sizes are integers >= 1 (and the rest builds a valid config);
2. the block counts the tensors hold equal the configured depths, and a decoder is configured exactly
   when the tensors hold one;
3. every tensor of the model is present with its shape, and no other tensor sits under the model's
   parts (``encoder.``, ``bottleneck.``, ``decoder.``; a converted export's text tower lies beside);
4. the tensors are floating point (never cast) and finite.

Head counts show in the tensors only through RoPE's stored ``periods`` (``rope_coords: normalized``,
the official maths: its length is a quarter of the head width); otherwise no tensor records them.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from vtp_lightning.errors import CheckpointError, VTPError
from vtp_lightning.models.autoencoder import VTPAutoencoder

# The autoencoder's parts, registered under these names in the tokenizer and in every export.
_PARTS = ("encoder", "bottleneck", "decoder")
# Sizes a part's config must give as integers >= 1.
_POSITIVE_SIZES = ("width", "depth", "heads", "patch_size", "image_size")


def build_checked(arch: Any, weights: dict[str, torch.Tensor], config: str, source: str) -> VTPAutoencoder:
    """The model ``arch`` describes with ``weights`` loaded, after checking that they agree.

    ``config`` names where ``arch`` comes from (``<dir>/config.json``), ``source`` where the weights do.
    """
    _check_sizes(arch, config)
    try:
        model = VTPAutoencoder.from_architecture(arch)
    except (VTPError, ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
        raise CheckpointError(
            f"{config} is not a valid architecture ({type(exc).__name__}: {exc}); export the checkpoint again "
            "with `vtp-export`"
        ) from None
    _check_block_counts(arch, weights, config, source)
    own = model.state_dict()
    _check_names_and_shapes(own, weights, config, source)
    _check_values(own, weights, source)
    model.load_state_dict({k: weights[k] for k in own}, strict=True)
    return model


def _check_sizes(arch: Any, config: str) -> None:
    if not isinstance(arch, dict) or not isinstance(arch.get("encoder"), dict):
        raise CheckpointError(f"{config} has no 'encoder' mapping in its architecture; export it again")
    checks = [("latent_dim", arch.get("latent_dim"))]
    for part in ("encoder", "decoder"):
        settings = arch.get(part)
        if settings is None and part == "decoder":
            continue
        if not isinstance(settings, dict):
            raise CheckpointError(f"{config}: {part} is {settings!r}, not a mapping of its settings")
        checks += [(f"{part}.{key}", settings[key]) for key in _POSITIVE_SIZES if key in settings]
    for key, value in checks:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointError(f"{config}: {key} = {value!r} is not an integer >= 1; export it again")


def _blocks(weights: dict[str, torch.Tensor], part: str) -> set[int]:
    pattern = re.compile(rf"{part}\.blocks\.(\d+)\.")
    return {int(m.group(1)) for k in weights if (m := pattern.match(k))}


def _check_block_counts(
    arch: dict[str, Any], weights: dict[str, torch.Tensor], config: str, source: str
) -> None:
    decoder = arch.get("decoder")
    if decoder is None and any(k.startswith("decoder.") for k in weights):
        first = min(k for k in weights if k.startswith("decoder."))
        raise CheckpointError(
            f"{config} configures no pixel decoder but {source} holds one ({first}); the two do not belong together"
        )
    for part, settings in (("encoder", arch["encoder"]), ("decoder", decoder)):
        if settings is None:
            continue
        held = _blocks(weights, part)
        if len(held) != settings["depth"] or (held and max(held) + 1 != len(held)):
            raise CheckpointError(
                f"{config} says {part}.depth = {settings['depth']} but {source} holds {len(held)} {part} blocks "
                f"({part}.blocks.0 … {part}.blocks.{max(held, default=-1)}); the config and the weights do not "
                "belong together"
            )


def _check_names_and_shapes(
    own: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], config: str, source: str
) -> None:
    missing = sorted(set(own) - set(weights))
    if missing:
        raise CheckpointError(
            f"{source} lacks {missing[0]}{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}, "
            f"which the architecture in {config} has"
        )
    extra = sorted(k for k in weights if k.split(".", 1)[0] in _PARTS and k not in own)
    if extra:
        raise CheckpointError(
            f"{source} holds {extra[0]}{f' and {len(extra) - 1} more' if len(extra) > 1 else ''}, which the "
            f"architecture in {config} has no place for"
        )
    for key, tensor in own.items():
        if weights[key].shape != tensor.shape:
            raise CheckpointError(
                f"{key} has shape {tuple(weights[key].shape)} in {source} but {tuple(tensor.shape)} in the "
                f"architecture of {config}; the config and the weights do not belong together"
            )


def _check_values(own: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], source: str) -> None:
    for key, tensor in own.items():
        held = weights[key]
        if tensor.is_floating_point() and not held.is_floating_point():
            raise CheckpointError(
                f"{source} holds {key} as {str(held.dtype).removeprefix('torch.')}, not floating point; "
                "quantised or integer weights are not cast silently — export the float weights"
            )
    bad = [k for k in own if weights[k].is_floating_point() and not bool(torch.isfinite(weights[k]).all())]
    if bad:
        raise CheckpointError(
            f"{source} holds non-finite weights ({len(bad)} tensors, e.g. {bad[0]}): the run diverged; "
            "use an earlier checkpoint or retrain with a lower learning rate"
        )
