"""The ``model.yaml`` of a converted checkpoint: a tokenizer of exactly its shapes and maths.

The composition is picked by the parts the checkpoint has (text tower, DINO head) as a class, and its
class path is read off the class. Option names are not written here: each converted value is a
config field (``ViTConfig.width``, ``TextConfig.vocab_size``, ...) and is given to the option that
the owning class (:class:`TokenizerModule` for the encoder, the reconstruction mixin for the pixel
decoder, the contrastive mixin for the text tower, the SSL-views mixin for the DINO head) declares
under that field's name (``width`` -> ``encoder_width``, ``vocab_size`` -> ``clip_text_vocab_size``),
found with :func:`~vtp_lightning.renamed_options.declared_options`. A renamed option is followed;
two options that could take one field are an error, never a guess.

Only ``vtp-convert`` uses this (it imports the tokenizers, a floor above the converter itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from vtp_lightning.data import VTPDataModule
from vtp_lightning.errors import CheckpointError
from vtp_lightning.models.vit import ENCODER_PRESETS
from vtp_lightning.objectives import ContrastiveMixin, ReconstructionMixin, TokenizerModule
from vtp_lightning.objectives.ssl_views import SSLViewsMixin
from vtp_lightning.official.convert import Converted
from vtp_lightning.renamed_options import declared_options
from vtp_lightning.tokenizer import AETokenizer, CLIPAETokenizer, SSLAETokenizer, VTPTokenizer

# The composition whose modules a checkpoint's tensors fill, by (has a text tower, has a DINO head);
# its objectives can still be switched off by weight.
_COMPOSITIONS: dict[tuple[bool, bool], type[TokenizerModule]] = {
    (True, True): VTPTokenizer,
    (True, False): CLIPAETokenizer,
    (False, True): SSLAETokenizer,
    (False, False): AETokenizer,
}


@dataclass(frozen=True)
class ModelOptions:
    """The tokenizer class and the ``model.init_args`` / ``data`` options that rebuild a conversion."""

    tokenizer: type[TokenizerModule]
    init_args: dict[str, Any]
    data: dict[str, Any]

    @property
    def class_path(self) -> str:
        return f"{self.tokenizer.__module__}.{self.tokenizer.__qualname__}"

    def config(self, init_weights: str) -> dict[str, Any]:
        """The ``model``/``data`` config LightningCLI reads, its weights initialised from ``init_weights``."""
        weights_option = option_for(self.tokenizer, TokenizerModule, "init_weights")
        return {
            "model": {
                "class_path": self.class_path,
                "init_args": {**self.init_args, weights_option: init_weights},
            },
            "data": dict(self.data),
        }


def option_for(cls: type, owner: type, field: str) -> str | None:
    """The option of ``cls`` that ``owner`` (or a base of it) declares for ``field``: named ``field``
    or ``*_<field>``; None when it declares none (the field is fixed by the module's design)."""
    declared = [name for name, klass in declared_options(cls) if issubclass(owner, klass)]
    if field in declared:
        return field
    matches = [name for name in declared if name.endswith(f"_{field}")]
    if len(matches) > 1:
        raise CheckpointError(
            f"cannot write model.yaml: {owner.__name__} declares {matches} for {field!r} and the converter "
            "cannot tell which; this is a bug in vtp_lightning.official.model_options"
        )
    return matches[0] if matches else None


def _fill(cls: type, owner: type, values: Mapping[str, Any], into: dict[str, Any]) -> None:
    """Give each value to the option ``owner`` declares for its field (fields without one are fixed)."""
    for field, value in values.items():
        option = option_for(cls, owner, field)
        if option is not None:
            into[option] = value


def model_options(converted: Converted) -> ModelOptions:
    """Options that build modules of exactly the converted shapes and maths."""
    parts = converted.parts
    cls = _COMPOSITIONS[(parts.text is not None, parts.ssl_head is not None)]
    encoder = parts.encoder
    encoder_fields = asdict(encoder)
    preset = next(
        (n for n, dims in ENCODER_PRESETS.items() if dims == (encoder.width, encoder.depth, encoder.heads)),
        None,
    )
    # A named preset stands for its width, depth and heads; otherwise they are given one by one.
    sizes = {"encoder": preset or "tiny"}
    if preset is not None:
        for field in ("width", "depth", "heads"):
            encoder_fields.pop(field)
    init_args: dict[str, Any] = {}
    _fill(cls, TokenizerModule, {**sizes, **encoder_fields, "latent_dim": parts.latent_dim}, init_args)
    if parts.decoder is not None:
        _fill(cls, ReconstructionMixin, asdict(parts.decoder), init_args)
    if parts.text is not None:
        loss = "sigmoid" if parts.logit_bias else "softmax"
        _fill(cls, ContrastiveMixin, {"loss": loss, **asdict(parts.text)}, init_args)
    if parts.ssl_head is not None:
        _fill(cls, SSLViewsMixin, asdict(parts.ssl_head), init_args)
    data: dict[str, Any] = {}
    _fill(
        VTPDataModule,
        VTPDataModule,
        {"image_size": encoder.image_size, "patch_size": encoder.patch_size},
        data,
    )
    return ModelOptions(cls, init_args, data)
