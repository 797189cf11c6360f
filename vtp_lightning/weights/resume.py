"""The resume check: a ``--ckpt_path`` must come from this model, trained with these model options.

The CLI calls :func:`check_resume_checkpoint` before LightningCLI reads the checkpoint itself. That read
rebuilds the model from the checkpoint's own hyper-parameters, class included, so an AE checkpoint given
to the VTP config would silently resume the AE, and a changed option (e.g. ``latent_dim``) would silently
train with the checkpoint's value. Reading the file here, tensors only, also makes a pickled payload, a
missing or a truncated file one error instead of code run or a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vtp_lightning.errors import CheckpointError
from vtp_lightning.weights.checkpoint_file import load_checkpoint
from vtp_lightning.weights.provenance import CLASS_KEY, check_written_by
from vtp_lightning.weights.sharded_checkpoint import META_FILE, is_sharded_checkpoint

#: ``--ckpt_path`` values Lightning resolves itself (to a file it then reads through SafeCheckpointIO)
LIGHTNING_CKPT_KEYWORDS = ("last", "best", "hpc", "registry")

#: options that may differ on resume: ``init_weights`` only acts at step 0, so a resume ignores it
RESUME_IGNORES = frozenset({"init_weights"})


def check_resume_checkpoint(
    ckpt_path: Any,
    class_path: str | None,
    model_class: type | None,
    model_options: Mapping[str, Any],
) -> int | None:
    """The checkpoint's global step, once it is known to fit the configured model; ``None`` when there
    is nothing to check (no path, or a keyword Lightning resolves itself).

    ``class_path`` is the config's ``model.class_path``, ``model_class`` the class it names (its old
    option names are migrated on read), ``model_options`` the config's ``model.init_args``.
    """
    if not ckpt_path or str(ckpt_path) in LIGHTNING_CKPT_KEYWORDS:
        return None
    # a sharded folder (FSDP2): its meta.pt holds the hyper-parameters and the step
    source = Path(ckpt_path) / META_FILE if is_sharded_checkpoint(ckpt_path) else ckpt_path
    checkpoint = load_checkpoint(source, what="--ckpt_path", model_class=model_class)
    hparams = checkpoint.get("hyper_parameters") or {}
    if class_path:
        check_written_by(
            checkpoint.get(CLASS_KEY) or hparams.get("_class_path"),
            class_path,
            f"the checkpoint {ckpt_path}",
            "resume with the checkpoint's own config, or use model.init_args.init_weights to start a "
            "new run from its matching modules",
        )
    changed = changed_model_options(hparams, model_options)
    if changed:
        detail = "; ".join(
            f"{k}: {theirs!r} in the checkpoint, {ours!r} now" for k, (theirs, ours) in changed.items()
        )
        raise CheckpointError(
            f"the checkpoint {ckpt_path} was trained with other model options ({detail}); resume with "
            "the options it was trained with (its run folder's config.yaml), or start a new run with "
            "model.init_args.init_weights"
        )
    return int(checkpoint.get("global_step", 0))


def changed_model_options(saved: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
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
