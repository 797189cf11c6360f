"""The ``lightning`` / ``vtp`` command: LightningCLI with fit / validate / test / predict.

    lightning fit --config experiments/clip_ssl_ae.yaml
    lightning fit --config experiments/clip_ssl_ae.yaml --trainer.max_steps 10
    lightning fit --config experiments/clip_ssl_ae.yaml --print_config

The ``lightning`` pip package ships no ``lightning`` command, so this one is what users get.
Errors a user can fix are printed as one ``error:`` line (exit code 2), not a stack trace. What runs
before anything is built: old option names (:mod:`vtp_lightning.renamed_options`), the resume check
(:mod:`vtp_lightning.weights.resume`), option values and the output folder
(:mod:`vtp_lightning.option_checks`).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from vtp_lightning.cli_parser import ShortErrorParser
from vtp_lightning.config_files import expanded_config_args
from vtp_lightning.data import VTPDataModule
from vtp_lightning.errors import ConfigError, VTPError
from vtp_lightning.option_checks import check_run_config
from vtp_lightning.renamed_options import configured_class, refuse_renamed_model_options
from vtp_lightning.run_history import ResumedCSVLogger
from vtp_lightning.weights.lightning_io import SafeCheckpointIO, open_tensors_only_first
from vtp_lightning.weights.resume import check_resume_checkpoint


class VTPCLI(LightningCLI):
    """LightningCLI with the suite's defaults: CSV + TensorBoard logs in ``default_root_dir``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.image_size", "model.init_args.image_size")
        parser.link_arguments("data.patch_size", "model.init_args.patch_size")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        if isinstance(args, list):
            refuse_renamed_model_options(args)  # one line naming the new name, not a parser dump
        super().parse_arguments(parser, args)
        self.resume_step: int | None = None
        if not self.config.get("subcommand"):
            return
        config = self.config[self.config.subcommand]
        model = config.get("model") or {}
        self.resume_step = check_resume_checkpoint(
            config.get("ckpt_path"),
            model.get("class_path"),
            configured_class(model.get("class_path")),
            _as_dict(model.get("init_args")),
        )

    def _parse_ckpt_path(self) -> None:
        """Skipped: LightningCLI would re-read the checkpoint with torch's own allowlist and merge its
        (pre-rename) option names into the config, which the resume check already found equal."""

    def before_instantiate_classes(self) -> None:
        """Check every option value and the output folder before anything is built
        (:mod:`vtp_lightning.option_checks`)."""
        config = self.config[self.config.subcommand]
        model = config.get("model") or {}
        root = config.get("trainer", {}).get("default_root_dir") or "outputs"  # where the loggers write
        check_run_config(
            _as_dict(config.get("data")),
            configured_class(model.get("class_path")),
            _as_dict(model.get("init_args")),
            root,
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        if kwargs.get("logger") in (None, True):
            root = Path(self._get(self.config_init, "trainer.default_root_dir") or "outputs")
            csv_logger = (
                CSVLogger(save_dir=root, name="", version="")
                if self.resume_step is None
                else ResumedCSVLogger(save_dir=root, name="", version="", resume_step=self.resume_step)
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
        return trainer


class ErrorOnAFreshLine(pl.Callback):
    """An error raised while a progress bar is drawing starts on a line of its own: Lightning calls
    ``on_exception`` before the exception reaches :func:`main`, which prints the ``error:`` line."""

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if trainer.progress_bar_callback is not None:
            sys.stderr.write("\n")


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
                trainer_defaults={"callbacks": [ErrorOnAFreshLine()]},  # added to any callback list
            )
    except Exception as exc:
        user_error = _user_error(exc)
        if user_error is None:
            raise
        print(f"error: {_one_line(user_error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
