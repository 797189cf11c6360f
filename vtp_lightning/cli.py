"""The ``lightning`` / ``vtp`` command: LightningCLI with fit / validate / test / predict.

    lightning fit --config experiments/clip_ssl_ae.yaml
    lightning fit --config experiments/clip_ssl_ae.yaml --trainer.max_steps 10
    lightning fit --config experiments/clip_ssl_ae.yaml --print_config

The ``lightning`` pip package ships no ``lightning`` command, so this one is what users get.
Errors a user can fix are printed as one ``error:`` line (exit code 2), not a stack trace.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from vtp_lightning.checkpoints import SafeCheckpointIO, load_checkpoint
from vtp_lightning.config_files import expand_config_args
from vtp_lightning.data import VTPDataModule
from vtp_lightning.errors import CheckpointError, VTPError

# ``--ckpt_path`` values Lightning resolves itself (to a file it then reads through SafeCheckpointIO).
LIGHTNING_CKPT_KEYWORDS = ("last", "best", "hpc", "registry")


class VTPCLI(LightningCLI):
    """LightningCLI with the suite's defaults: CSV + TensorBoard logs in ``default_root_dir``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.image_size", "model.init_args.image_size")
        parser.link_arguments("data.patch_size", "model.init_args.patch_size")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        self._refuse_foreign_checkpoint()

    def _refuse_foreign_checkpoint(self) -> None:
        """Refuse ``--ckpt_path`` of another tokenizer class, before LightningCLI swaps the model.

        When resuming, LightningCLI rebuilds the model from the checkpoint's own hyper-parameters,
        class included, so an AE checkpoint given to the VTP config would silently resume the AE
        and the module's own class check would never see the mismatch.
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
        checkpoint = load_checkpoint(ckpt_path, what="--ckpt_path")
        theirs = checkpoint.get("vtp_class") or checkpoint.get("hyper_parameters", {}).get("_class_path")
        ours = config.get("model", {}).get("class_path")
        if theirs and ours and theirs != ours:
            raise CheckpointError(
                f"the checkpoint {ckpt_path} holds a {theirs.rsplit('.', 1)[-1]} but this run builds a "
                f"{ours.rsplit('.', 1)[-1]}; resume with the checkpoint's own config, or use "
                "model.init_args.init_weights to start a new run from its matching modules"
            )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        if kwargs.get("logger") in (None, True):
            root = Path(self._get(self.config_init, "trainer.default_root_dir") or "outputs")
            kwargs["logger"] = [
                CSVLogger(save_dir=root, name="", version=""),
                TensorBoardLogger(save_dir=root, name="tensorboard", version=""),
            ]
        kwargs["plugins"] = _with_safe_checkpoint_io(self._get(self.config_init, "trainer.plugins"))
        trainer = super().instantiate_trainer(**kwargs)
        _progress_bar_in_use[0] = trainer.progress_bar_callback is not None
        return trainer


# Whether this process's trainer draws a progress bar: an error then starts on a fresh line.
_progress_bar_in_use = [False]


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
        VTPCLI(
            LightningModule,
            VTPDataModule,
            subclass_mode_model=True,
            args=expand_config_args(args),
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"parser_mode": "omegaconf"},
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
