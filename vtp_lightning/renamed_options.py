"""Model options renamed when every objective's options took its objective's prefix: the one table.

Old names never fail obscurely:

- a config or command line that still uses one is refused with one line naming the new name
  (:func:`refuse_renamed_options`, called by the CLI before LightningCLI parses anything);
- a checkpoint written before the rename has its saved hyper-parameters renamed when it is read
  (:func:`migrate_hparams`: resuming through the CLI and ``load_from_checkpoint``), so it still loads
  and resumes. Exporting and ``init_weights`` read only tensors and the architecture, whose names
  did not change.

A name is only treated as old for a class that does not itself declare it (stage 2's
``perceptual_weights`` is its own option, not the reconstruction mixin's old one).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from vtp_lightning.errors import ConfigError

#: old option name -> new option name
RENAMED_OPTIONS: dict[str, str] = {
    # CLIP (ContrastiveMixin)
    "embed_dim": "clip_embed_dim",
    "text_width": "clip_text_width",
    "text_layers": "clip_text_layers",
    "text_heads": "clip_text_heads",
    "text_context_length": "clip_text_context_length",
    "text_vocab_size": "clip_text_vocab_size",
    "text_weights": "clip_text_weights",
    "logit_scale_init": "clip_logit_scale_init",
    "logit_scale_max": "clip_logit_scale_max",
    # DINO / iBOT (SSLViewsMixin)
    "num_prototypes": "ssl_num_prototypes",
    "head_hidden_dim": "ssl_head_hidden_dim",
    "head_bottleneck_dim": "ssl_head_bottleneck_dim",
    "student_temp": "ssl_student_temp",
    "teacher_temp": "ssl_teacher_temp",
    "teacher_temp_start": "ssl_teacher_temp_start",
    "teacher_temp_warmup": "ssl_teacher_temp_warmup",
    "teacher_targets": "ssl_teacher_targets",
    "center_momentum": "ssl_center_momentum",
    # reconstruction (ReconstructionMixin)
    "decoder_width": "rec_decoder_width",
    "decoder_depth": "rec_decoder_depth",
    "decoder_heads": "rec_decoder_heads",
    "perceptual_weights": "rec_perceptual_weights",
    "perceptual_weight": "rec_perceptual_weight",
}


def declared_options(cls: type) -> Iterator[tuple[str, type]]:
    """``(option, declaring class)`` for every keyword of ``cls``'s ``__init__`` chain, in MRO order
    (mixins pass ``**kwargs`` up, so a composition accepts the union)."""
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        for name, parameter in inspect.signature(vars(klass)["__init__"]).parameters.items():
            if name == "self" or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                continue
            yield name, klass


def _renamed_for(name: str, cls: type | None) -> str | None:
    """The new name of ``name`` when it is an old one that ``cls`` (None: any class) does not declare."""
    new = RENAMED_OPTIONS.get(name)
    if new is None or (cls is not None and name in {n for n, _ in declared_options(cls)}):
        return None
    return new


def refuse_renamed_options(
    options: Mapping[str, Any], cls: type | None, where: str = "in your config"
) -> None:
    """Raise one :class:`ConfigError` naming the new name of the first old option in ``options``.

    ``cls`` is the configured class (None when unknown: every old name is refused); ``where`` says
    where the option was given (``in your config``, ``on the command line``).
    """
    for name in options:
        new = _renamed_for(name, cls)
        if new is not None:
            raise ConfigError(f"model option {name!r} was renamed {new!r}; rename it {where}")


def migrate_options(options: Mapping[str, Any], cls: type | None) -> dict[str, Any]:
    """``options`` with every old name renamed (a value already under the new name wins)."""
    out = dict(options)
    for name in list(out):
        new = _renamed_for(name, cls)
        if new is not None:
            value = out.pop(name)
            out.setdefault(new, value)
    return out


def migrate_hparams(checkpoint: dict[str, Any], cls: type | None) -> bool:
    """Rename, in place, the old option names in a checkpoint's saved hyper-parameters.

    ``cls`` is the class about to be built from them. Returns whether anything was renamed.
    """
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, Mapping):
        return False
    migrated = migrate_options(hparams, cls)
    if migrated.keys() == hparams.keys():
        return False
    checkpoint["hyper_parameters"] = migrated
    return True
