"""Every option value of a run checked in one place, before anything is built.

Each numeric option's accepted range is declared once, in :data:`MODEL_RANGES` and :data:`DATA_RANGES`;
a few rules relate two options (an image size that is a multiple of the patch size, heads that divide
a width, a batch that holds the SSL rows, ...). The CLI calls :func:`check_run_config` on the parsed
config before LightningCLI instantiates anything, so a bad value is one :class:`ConfigError` naming the
option and what it accepts, never a ``ZeroDivisionError``, an optimiser's ``ValueError`` or a shape
error from deep inside a forward pass.

Why not jsonargparse's restricted types (``PositiveInt``, ...) in the constructors' signatures: in
subclass mode a refused value comes back as a many-line "does not validate against any of the types"
report about the class path, and those types cannot say how two options relate.
"""

from __future__ import annotations

import inspect
import math
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtp_lightning.errors import ConfigError
from vtp_lightning.renamed_options import declared_options


@dataclass(frozen=True)
class Range:
    """The accepted values of one numeric option (or of each element of a list/tuple option)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # ``low`` itself is refused
    high_open: bool = False  # ``high`` itself is refused
    integer: bool = False

    def accepts(self, value: Any) -> bool:
        if isinstance(value, (list, tuple)):
            return all(self.accepts(v) for v in value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {high}"
        return f"a finite {kind.removeprefix('a ').removeprefix('an ')}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


POSITIVE_INT = Range(low=1, integer=True)
NON_NEGATIVE_INT = Range(low=0, integer=True)
POSITIVE = Range(low=0, low_open=True)
NON_NEGATIVE = Range(low=0)
FRACTION = Range(low=0, high=1)  # [0, 1]
BELOW_ONE = Range(low=0, high=1, high_open=True)  # [0, 1)
AREA_FRACTION = Range(low=0, high=1, low_open=True)  # (0, 1]

#: model options (of whichever class declares them: the tokenizers and stage-2 decoder tuning)
MODEL_RANGES: dict[str, Range] = {
    # the shared autoencoder
    "encoder_width": POSITIVE_INT,
    "encoder_depth": POSITIVE_INT,
    "encoder_heads": POSITIVE_INT,
    "image_size": POSITIVE_INT,
    "patch_size": POSITIVE_INT,
    "latent_dim": POSITIVE_INT,
    "norm_eps": POSITIVE,
    "ffn_align": NON_NEGATIVE_INT,
    # optimiser and schedules
    "lr": POSITIVE,
    "min_lr_ratio": FRACTION,
    "warmup_fraction": FRACTION,
    "weight_decay": NON_NEGATIVE,
    "betas": BELOW_ONE,
    "teacher_momentum": FRACTION,
    "teacher_momentum_end": FRACTION,
    # objective weights (0 switches an objective off)
    "rec_weight": NON_NEGATIVE,
    "clip_weight": NON_NEGATIVE,
    "dino_weight": NON_NEGATIVE,
    "koleo_weight": NON_NEGATIVE,
    "mim_weight": NON_NEGATIVE,
    "rec_perceptual_weight": NON_NEGATIVE,
    # reconstruction
    "rec_batch_size": POSITIVE_INT,
    "rec_drop_path": BELOW_ONE,
    "rec_decoder_width": POSITIVE_INT,
    "rec_decoder_depth": POSITIVE_INT,
    "rec_decoder_heads": POSITIVE_INT,
    # CLIP
    "clip_embed_dim": POSITIVE_INT,
    "clip_text_width": POSITIVE_INT,
    "clip_text_layers": POSITIVE_INT,
    "clip_text_heads": POSITIVE_INT,
    "clip_text_context_length": Range(low=2, integer=True),  # start and end token
    "clip_text_vocab_size": POSITIVE_INT,
    "clip_drop_path": BELOW_ONE,
    # DINO / iBOT
    "ssl_num_prototypes": POSITIVE_INT,
    "ssl_head_hidden_dim": POSITIVE_INT,
    "ssl_head_bottleneck_dim": POSITIVE_INT,
    "ssl_student_temp": POSITIVE,
    "ssl_teacher_temp": POSITIVE,
    "ssl_teacher_temp_start": POSITIVE,
    "ssl_teacher_temp_warmup": FRACTION,
    "ssl_center_momentum": FRACTION,
    "ssl_drop_path": BELOW_ONE,
    # stage-2 decoder tuning
    "perceptual_weight": NON_NEGATIVE,
    "gan_weight": NON_NEGATIVE,
    "disc_start": NON_NEGATIVE_INT,
    "disc_lr": POSITIVE,
    "disc_channels": POSITIVE_INT,
    "disc_layers": POSITIVE_INT,
}

#: options of :class:`~vtp_lightning.data.VTPDataModule`
DATA_RANGES: dict[str, Range] = {
    "image_size": POSITIVE_INT,
    "patch_size": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "ssl_batch_size": NON_NEGATIVE_INT,
    "num_local_crops": NON_NEGATIVE_INT,
    "global_crop_scale": AREA_FRACTION,
    "local_crop_scale": AREA_FRACTION,
    "local_crop_size": POSITIVE_INT,
    "mask_ratio": FRACTION,
    "mask_probability": FRACTION,
    "context_length": Range(low=2, integer=True),  # start and end token
    "num_workers": NON_NEGATIVE_INT,
    "color_jitter": BELOW_ONE,
    "val_limit": POSITIVE_INT,
    "background": Range(low=0, high=255, integer=True),
    "max_image_pixels": POSITIVE_INT,
}


def range_problems(options: Mapping[str, Any], ranges: Mapping[str, Range], prefix: str) -> Iterator[str]:
    """A message for every option of ``options`` outside its range (``None`` means "the default")."""
    for name, accepted in ranges.items():
        value = options.get(name)
        if value is None or accepted.accepts(value):
            continue
        each = "each value of " if isinstance(value, (list, tuple)) else ""
        yield f"{each}{prefix}{name} must be {accepted.describe()}, got {_shown(value)}"


def _shown(value: Any) -> str:
    return (
        str(list(value))
        if isinstance(value, tuple)
        else repr(value)
        if isinstance(value, str)
        else str(value)
    )


# ---------------------------------------------------------------------------------- relations
Named = Callable[[str], str]


def data_relation_problems(o: Mapping[str, Any], name: Named) -> Iterator[str]:
    """Rules between data options (checked once each option is within its own range)."""
    size, patch, batch = o.get("image_size"), o.get("patch_size"), o.get("batch_size")
    if size is not None and patch is not None and size % patch:
        yield f"{name('image_size')} ({size}) must be a multiple of {name('patch_size')} ({patch})"
    local = o.get("local_crop_size")
    if local is not None and patch is not None and local % patch:
        yield f"{name('local_crop_size')} ({local}) must be a multiple of {name('patch_size')} ({patch})"
    ssl = o.get("ssl_batch_size")
    if ssl is not None and batch is not None and ssl > batch:
        yield f"{name('ssl_batch_size')} ({ssl}) must be at most {name('batch_size')} ({batch})"
    for key in ("global_crop_scale", "local_crop_scale", "mask_ratio"):
        pair = o.get(key)
        if pair is not None and (len(pair) != 2 or pair[0] > pair[1]):
            yield f"{name(key)} must be two values [low, high] with low <= high, got {_shown(pair)}"


def model_relation_problems(o: Mapping[str, Any], name: Named) -> Iterator[str]:
    """Rules between model options: image/patch sizes and the widths each attention's heads split."""
    size, patch = o.get("image_size"), o.get("patch_size")
    if size is not None and patch is not None and size % patch:
        yield f"{name('image_size')} ({size}) must be a multiple of {name('patch_size')} ({patch})"
    from vtp_lightning.models.vit import ENCODER_PRESETS  # here: the data floor imports this module too

    preset = ENCODER_PRESETS.get(o.get("encoder", "tiny"))
    rope = o.get("pos_embed", "rope") == "rope"
    width = heads = None
    if preset is not None and "encoder_width" in o:
        width, heads = o.get("encoder_width") or preset[0], o.get("encoder_heads") or preset[2]
        yield from _head_problems(width, heads, rope, name("encoder_width"), name("encoder_heads"))
    if width is not None and "rec_decoder_depth" in o:  # the pixel decoder defaults to the encoder's shape
        yield from _head_problems(
            o.get("rec_decoder_width") or width,
            o.get("rec_decoder_heads") or heads,
            True,  # the pixel decoder always uses 2-D RoPE
            name("rec_decoder_width") if o.get("rec_decoder_width") else name("encoder_width"),
            name("rec_decoder_heads") if o.get("rec_decoder_heads") else name("encoder_heads"),
        )
    if o.get("clip_text_width") is not None and o.get("clip_text_heads") is not None:
        yield from _head_problems(
            o["clip_text_width"],
            o["clip_text_heads"],
            False,
            name("clip_text_width"),
            name("clip_text_heads"),
        )


def _head_problems(width: int, heads: int, rope: bool, width_name: str, heads_name: str) -> Iterator[str]:
    if width % heads:
        yield f"{width_name} ({width}) must be divisible by {heads_name} ({heads})"
    elif rope and (width // heads) % 4:
        yield (
            f"{width_name} / {heads_name} ({width} / {heads} = {width // heads}) must be a multiple of 4 "
            "for 2-D RoPE"
        )


# ------------------------------------------------------------------------------------ checks
def _first(problems: Iterator[str]) -> None:
    problem = next(problems, None)
    if problem is not None:
        raise ConfigError(problem)


def _model_options(cls: type | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the class's declared defaults filled in (only the options it declares)."""
    if cls is None:
        return dict(options)
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        for key, parameter in inspect.signature(vars(klass)["__init__"]).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                out.setdefault(key, parameter.default)
    declared = {key for key, _ in declared_options(cls)}
    out.update({k: v for k, v in options.items() if k in declared})
    return {k: v for k, v in out.items() if k in declared}


def check_model_options(
    cls: type | None, options: Mapping[str, Any], prefix: str = "model.init_args."
) -> None:
    """Refuse, with one :class:`ConfigError`, the first model option outside its range or its rules.

    ``cls`` is the configured class (None: check every option given); options it does not declare
    are left to the parser.
    """
    values = _model_options(cls, options)
    _first(range_problems(values, MODEL_RANGES, prefix))
    _first(model_relation_problems(values, lambda key: f"{prefix}{key}"))


def check_data_options(options: Mapping[str, Any], prefix: str = "data.") -> None:
    """Refuse, with one :class:`ConfigError`, the first data option outside its range or its rules."""
    _first(range_problems(options, DATA_RANGES, prefix))
    _first(data_relation_problems(options, lambda key: f"{prefix}{key}"))


def check_caption_lengths(data: Mapping[str, Any], model: Mapping[str, Any]) -> None:
    """The data's captions must fit the text tower's positions."""
    data_length, model_length = data.get("context_length"), model.get("clip_text_context_length")
    if data_length is not None and model_length is not None and data_length > model_length:
        raise ConfigError(
            f"data.context_length ({data_length}) must be at most model.init_args.clip_text_context_length "
            f"({model_length})"
        )


def check_output_dir(path: str | Path, option: str = "trainer.default_root_dir") -> None:
    """Refuse, with one :class:`ConfigError`, an output folder that cannot be created or written.

    A temporary file is written in ``path`` or, when it does not exist yet, in its nearest existing
    ancestor (where the run will create it); nothing is created, so a run refused later leaves no
    folder behind, and ranks starting together do not race.
    """
    folder = Path(path)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        where = "it is a file" if existing == folder else f"{existing} is a file"
        raise ConfigError(f"{option} {folder} cannot be created ({where}); choose another folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"{option} {folder} cannot be written ({existing}: {reason}); choose a folder you can write to"
        ) from None


def check_run_config(
    data: Mapping[str, Any] | None,
    model_class: type | None,
    model_options: Mapping[str, Any] | None,
    output_dir: str | Path | None,
) -> None:
    """Everything :mod:`vtp_lightning.cli` checks before it builds the data, the model and the Trainer."""
    if data is not None:
        check_data_options(data)
    if model_options is not None:
        check_model_options(model_class, model_options)
        if data is not None:
            check_caption_lengths(data, _model_options(model_class, model_options))
    if output_dir is not None:
        check_output_dir(output_dir)
