"""Model options renamed when every objective's options took its objective's prefix: the one table.

Old names never fail obscurely:

- a config or command line that still uses one is refused with one line naming the new name
  (:func:`refuse_renamed_model_options` scans the command line and its config files, called by the CLI
  before LightningCLI parses anything; :func:`refuse_renamed_options` checks one mapping);
- a checkpoint written before the rename has its saved hyper-parameters renamed when it is read
  (:func:`migrate_hparams`: resuming through the CLI and ``load_from_checkpoint``), so it still loads
  and resumes. Exporting and ``init_weights`` read only tensors and the architecture, whose names
  did not change.

A name is only treated as old for a class that does not itself declare it (stage 2's
``perceptual_weights`` is its own option, not the reconstruction mixin's old one).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from vtp_lightning.errors import ConfigError, VTPError

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


# ------------------------------------------------------------------ the command line and its configs
_SUBCOMMANDS = ("fit", "validate", "test", "predict")

#: where a config's short ``class_path`` (``AETokenizer``) is looked up
_SHORT_NAME_MODULES = ("vtp_lightning.tokenizer", "vtp_lightning.decoder_tuning")


def configured_class(class_path: Any) -> type | None:
    """The class a config's ``class_path`` names (a dotted path, or a short tokenizer or stage-2
    name), or None when it names none."""
    if not isinstance(class_path, str) or not class_path:
        return None
    module_name, _, name = class_path.rpartition(".")
    for module in [module_name] if module_name else _SHORT_NAME_MODULES:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except (ImportError, ValueError):
            continue
        if isinstance(found, type):
            return found
    return None


def refuse_renamed_model_options(args: list[str]) -> None:
    """Refuse, with one :class:`ConfigError` naming the new name, an old model option given on the
    command line ``args`` or in a config it names (``--config``, ``--model``, ``--model.init_args``).

    jsonargparse would only say the old name "is not accepted", in a block about the class path; this
    reads what the parser will read, before it does.
    """
    class_path: str | None = None
    given: list[tuple[str, str]] = []  # (option, where)

    def take(model: dict[str, Any], where: str) -> None:
        nonlocal class_path
        class_path = model.get("class_path", class_path)
        init_args = model.get("init_args")
        options = init_args if isinstance(init_args, dict) else model
        given.extend(
            (name, where) for name in options if name not in ("class_path", "init_args", "dict_kwargs")
        )

    for i, arg in enumerate(args):
        key, has_value, value = arg.partition("=")
        if not has_value:
            value = args[i + 1] if i + 1 < len(args) else ""
        if key in ("--config", "-c"):
            take(_model_section(_yaml_mapping(value)), "in your config")
        elif key == "--model":  # a class name, or the model's config (a file or inline YAML)
            mapping = _yaml_mapping(value)
            take(mapping or {"class_path": value}, "in your config")
        elif key == "--model.class_path":
            class_path = value
        elif key == "--model.init_args":
            take({"init_args": _yaml_mapping(value)}, "in your config")
        elif key.startswith("--model."):
            name = key.removeprefix("--model.").removeprefix("init_args.")
            if "." not in name:
                given.append((name, "on the command line"))
    cls = configured_class(class_path)
    for name, where in given:
        refuse_renamed_options({name: None}, cls, where)


def _yaml_mapping(value: str) -> dict[str, Any]:
    """A config file's content (``__base__`` merged), or a YAML/JSON mapping given inline; {} otherwise."""
    # imported here: the weights floor reads this module for migrate_hparams, without OmegaConf
    from vtp_lightning.config_files import load_config

    try:
        loaded = load_config(value) if Path(value).is_file() else yaml.safe_load(value)
    except (VTPError, yaml.YAMLError, OSError, ValueError):
        return {}  # the parser reports it
    return loaded if isinstance(loaded, dict) else {}


def _model_section(config: dict[str, Any]) -> dict[str, Any]:
    """The ``model`` entry of a config, at its top level or under a subcommand."""
    for scope in (config, *(config.get(c) for c in _SUBCOMMANDS)):
        if isinstance(scope, dict) and isinstance(scope.get("model"), dict):
            return scope["model"]
    return {}
