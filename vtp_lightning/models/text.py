"""Text tower: open_clip's causal text transformer, with optional real OpenCLIP weights from a file.

Nothing is downloaded: pretrained text weights come from a local checkpoint (an OpenCLIP model
``.pt``/``.bin``/``.safetensors`` whose text keys are loaded, the vision keys ignored).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from open_clip.transformer import TextTransformer
from torch import nn

from vtp_lightning.errors import WeightsError
from vtp_lightning.models.tensor_file import read_tensor_file

# Keys of an OpenCLIP CLIP checkpoint that belong to the text tower (top level in CLIP models).
_TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


@dataclass(frozen=True)
class TextConfig:
    context_length: int = 77
    vocab_size: int = 49408
    width: int = 768
    layers: int = 12
    heads: int = 12
    embed_dim: int = 768

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def build_text_tower(config: TextConfig) -> TextTransformer:
    """An OpenCLIP-style text transformer (GELU, causal mask, EOT/argmax pooling, bias-free projection)."""
    return TextTransformer(
        context_length=config.context_length,
        vocab_size=config.vocab_size,
        width=config.width,
        heads=config.heads,
        layers=config.layers,
        output_dim=config.embed_dim,
        act_layer=nn.GELU,
        pool_type="argmax",
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = read_tensor_file(path)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict; give an OpenCLIP checkpoint file.")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_openclip_text_weights(tower: TextTransformer, path: str | Path) -> None:
    """Load the text tower of an OpenCLIP checkpoint into ``tower`` (shapes must match exactly)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"text weights file {path} does not exist; set model.init_args.clip_text_weights to a local OpenCLIP "
            "checkpoint (nothing is downloaded) or to null to train the text tower from scratch."
        )
    try:
        state = _read_state_dict(path)
    except WeightsError:
        raise
    except Exception as exc:  # a truncated or foreign file
        raise WeightsError(f"cannot read text weights {path}: {exc}") from exc
    text_state = {k: v for k, v in state.items() if k.startswith(_TEXT_PREFIXES)}
    if not text_state:
        raise WeightsError(
            f"{path} has no OpenCLIP text-tower keys (expected keys starting with {', '.join(_TEXT_PREFIXES)})."
        )
    own = tower.state_dict()
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in text_state.items()
        if k in own and own[k].shape != v.shape
    ]
    missing = sorted(set(own) - set(text_state))
    if mismatched or missing:
        detail = "; ".join(mismatched[:3] + [f"missing {m}" for m in missing[:3]])
        raise WeightsError(
            f"text weights {path} do not fit this text tower ({detail}); set clip_text_width/"
            "clip_text_layers/clip_text_heads/clip_text_context_length/clip_embed_dim to the checkpoint's "
            "architecture."
        )
    tower.load_state_dict({k: v for k, v in text_state.items() if k in own})
