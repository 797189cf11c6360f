"""The ``lightning`` / ``vtp`` command: LightningCLI with fit / validate / test / predict.

    lightning fit --config experiments/clip_ssl_ae.yaml
    lightning fit --config experiments/clip_ssl_ae.yaml --trainer.max_steps 10
    lightning fit --config experiments/clip_ssl_ae.yaml --print_config

The ``lightning`` pip package ships no ``lightning`` command, so this one is what users get.
Errors a user can fix are printed as one ``error:`` line (exit code 2), not a stack trace.
"""

from __future__ import annotations

import importlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from vtp_lightning.cli_parser import ShortErrorParser
from vtp_lightning.config_files import expanded_config_args, load_config
from vtp_lightning.data import VTPDataModule
from vtp_lightning.errors import CheckpointError, ConfigError, VTPError
from vtp_lightning.option_checks import check_run_config
from vtp_lightning.renamed_options import refuse_renamed_options
from vtp_lightning.run_history import ResumedCSVLogger
from vtp_lightning.weights.checkpoint_file import load_checkpoint
from vtp_lightning.weights.lightning_io import SafeCheckpointIO, open_tensors_only_first
from vtp_lightning.weights.provenance import CLASS_KEY, check_written_by

# ``--ckpt_path`` values Lightning resolves itself (to a file it then reads through SafeCheckpointIO).
LIGHTNING_CKPT_KEYWORDS = ("last", "best", "hpc", "registry")


class VTPCLI(LightningCLI):
    """LightningCLI with the suite's defaults: CSV + TensorBoard logs in ``default_root_dir``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.image_size", "model.init_args.image_size")
        parser.link_arguments("data.patch_size", "model.init_args.patch_size")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        if isinstance(args, list):
            refuse_renamed_model_options(args)  # one line naming the new name, not a parser dump
        super().parse_arguments(parser, args)
        self._resume_step: int | None = None
        self._resume_hparams: dict[str, Any] = {}
        self._check_resume_checkpoint()

    def before_instantiate_classes(self) -> None:
        """Check every option value and the output folder before anything is built
        (:mod:`vtp_lightning.option_checks`)."""
        config = self.config[self.config.subcommand]
        model = config.get("model") or {}
        root = config.get("trainer", {}).get("default_root_dir") or "outputs"  # where the loggers write
        check_run_config(
            _as_dict(config.get("data")),
            _import_class(model.get("class_path")),
            _as_dict(model.get("init_args")),
            root,
        )

    def _parse_ckpt_path(self) -> None:
        """LightningCLI's own step that puts the checkpoint's hyper-parameters into the config, fed the
        ones :meth:`_check_resume_checkpoint` read safely, with renamed options migrated (Lightning's
        would re-read the file and hand a pre-rename checkpoint's old names to the parser)."""
        hparams = dict(self._resume_hparams)
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({self.config.subcommand: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write("Parsing of ckpt_path hyperparameters failed!\n")
            raise

    def _check_resume_checkpoint(self) -> None:
        """Read ``--ckpt_path`` safely and refuse it for another model or other model options.

        This runs before LightningCLI reads the checkpoint itself: that read rebuilds the model from
        the checkpoint's own hyper-parameters, class included, so an AE checkpoint given to the VTP
        config would silently resume the AE, and a changed option (e.g. ``latent_dim``) would
        silently train with the checkpoint's value.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path or str(ckpt_path) in LIGHTNING_CKPT_KEYWORDS:
            return
        # Read (weights only) before LightningCLI does: a pickled payload, a missing or a truncated
        # file is one error here instead of code run or a traceback there.
        model = config.get("model") or {}
        ours = model.get("class_path")
        checkpoint = load_checkpoint(ckpt_path, what="--ckpt_path", model_class=_import_class(ours))
        hparams = checkpoint.get("hyper_parameters") or {}
        theirs = checkpoint.get(CLASS_KEY) or hparams.get("_class_path")
        if ours:
            check_written_by(
                theirs,
                ours,
                f"the checkpoint {ckpt_path}",
                "resume with the checkpoint's own config, or use model.init_args.init_weights to start a "
                "new run from its matching modules",
            )
        changed = changed_model_options(hparams, _as_dict(model.get("init_args")))
        if changed:
            detail = "; ".join(
                f"{k}: {theirs!r} in the checkpoint, {ours!r} now" for k, (theirs, ours) in changed.items()
            )
            raise CheckpointError(
                f"the checkpoint {ckpt_path} was trained with other model options ({detail}); resume with "
                "the options it was trained with (its run folder's config.yaml), or start a new run with "
                "model.init_args.init_weights"
            )
        self._resume_step = int(checkpoint.get("global_step", 0))
        self._resume_hparams = dict(hparams)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        if kwargs.get("logger") in (None, True):
            root = Path(self._get(self.config_init, "trainer.default_root_dir") or "outputs")
            resume_step = getattr(self, "_resume_step", None)
            csv_logger = (
                CSVLogger(save_dir=root, name="", version="")
                if resume_step is None
                else ResumedCSVLogger(save_dir=root, name="", version="", resume_step=resume_step)
            )
            kwargs["logger"] = [
                csv_logger,
                TensorBoardLogger(save_dir=root, name="tensorboard", version=""),
            ]
        kwargs["plugins"] = _with_safe_checkpoint_io(self._get(self.config_init, "trainer.plugins"))
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except (ValueError, MisconfigurationException) as exc:  # e.g. a strategy name Lightning lacks
            raise ConfigError(f"trainer settings: {str(exc).splitlines()[0]}") from exc
        open_tensors_only_first(trainer.strategy)
        _progress_bar_in_use[0] = trainer.progress_bar_callback is not None
        return trainer


# Whether this process's trainer draws a progress bar: an error then starts on a fresh line.
_progress_bar_in_use = [False]


# ------------------------------------------------------------------ renamed model options
_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _import_class(class_path: Any) -> type | None:
    """The class named by a config's ``class_path`` (a short name: a tokenizer or stage 2), or None."""
    if not isinstance(class_path, str) or not class_path:
        return None
    module_name, _, name = class_path.rpartition(".")
    modules = [module_name] if module_name else ["vtp_lightning.tokenizer", "vtp_lightning.decoder_tuning"]
    for module in modules:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except (ImportError, ValueError):
            continue
        if isinstance(found, type):
            return found
    return None


def _yaml_mapping(value: str) -> dict[str, Any]:
    """A config file's content, or a YAML/JSON mapping given inline; {} for anything else."""
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


def refuse_renamed_model_options(args: list[str]) -> None:
    """Refuse, with one :class:`ConfigError` naming the new name, a model option renamed since a config
    or command line was written (:data:`vtp_lightning.renamed_options.RENAMED_OPTIONS`)."""
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
    cls = _import_class(class_path)
    for name, where in given:
        refuse_renamed_options({name: None}, cls, where)


# Options that may differ on resume: init_weights only acts at step 0, so a resume ignores it.
RESUME_IGNORES = frozenset({"init_weights"})


def changed_model_options(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{option: (checkpoint's value, this run's value)}`` for model options set in both that differ."""
    changed = {}
    for key in sorted(set(saved) & set(now) - RESUME_IGNORES):
        if key.startswith("_"):
            continue
        theirs, ours = _plain(saved[key]), _plain(now[key])
        if theirs != ours:
            changed[key] = (theirs, ours)
    return changed


def _plain(value: Any) -> Any:
    """JSON-comparable form: tuples become lists, paths strings (as a YAML config would give them)."""
    return json.loads(json.dumps(value, default=str))


def _as_dict(namespace: Any) -> dict[str, Any]:
    if namespace is None:
        return {}
    return namespace.as_dict() if hasattr(namespace, "as_dict") else dict(namespace)


def _with_safe_checkpoint_io(plugins: Any) -> list[Any]:
    """The configured plugins plus :class:`SafeCheckpointIO`, unless one of them is a CheckpointIO."""
    from lightning.fabric.plugins import CheckpointIO

    plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(SafeCheckpointIO())
    return plugins


def _one_line(exc: BaseException) -> str:
    """Message of a user error, unwrapped from a DataLoader worker's traceback if needed."""
    message = str(exc).strip()
    if message.startswith("Caught ") and "Traceback" in message:
        message = message.splitlines()[-1].split(": ", 1)[-1]
    return message


def _user_error(exc: BaseException) -> VTPError | None:
    """The :class:`VTPError` behind ``exc``: jsonargparse re-raises errors of class instantiation
    (e.g. a missing weights file) as a ``ValueError`` chained to the original."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, VTPError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # We hand LightningCLI the argv with __base__ configs merged; that is intended, not a mistake.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    _progress_bar_in_use[0] = False
    try:
        with expanded_config_args(args) as expanded:
            VTPCLI(
                LightningModule,
                VTPDataModule,
                subclass_mode_model=True,
                args=expanded,
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"parser_mode": "omegaconf"},
                parser_class=ShortErrorParser,
            )
    except Exception as exc:
        user_error = _user_error(exc)
        if user_error is None:
            raise
        fresh_line = "\n" if _progress_bar_in_use[0] else ""
        print(f"{fresh_line}error: {_one_line(user_error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
