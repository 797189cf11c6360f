"""The tiny model sizes the tests build tokenizers at, in one place.

Small enough that any composition builds in milliseconds and fits a few CPU steps; the sizes carry no
meaning, so one set serves every test. A test that needs another size says why next to its override
(e.g. the objective tests use two encoder blocks: the linear stochastic-depth schedule gives a single
block the rate 0). Imported as ``from tiny_sizes import ...``: pytest puts ``tests/`` on ``sys.path``
(the root conftest lives there); a subprocess script inserts that folder itself.
"""

from __future__ import annotations

import inspect
from typing import Any

#: the shared ViT encoder (and, by default, its pixel decoder's width and heads)
TINY_ENCODER: dict[str, Any] = {"encoder_width": 32, "encoder_depth": 1, "encoder_heads": 2}
#: the CLIP text tower and joint embedding
TINY_CLIP: dict[str, Any] = {
    "clip_embed_dim": 16,
    "clip_text_width": 16,
    "clip_text_layers": 1,
    "clip_text_heads": 2,
}
#: the DINO / iBOT prototype head
TINY_SSL: dict[str, Any] = {"ssl_num_prototypes": 16, "ssl_head_hidden_dim": 16, "ssl_head_bottleneck_dim": 8}
#: the pixel decoder
TINY_REC: dict[str, Any] = {"rec_decoder_depth": 1}
#: every objective's sizes; a class takes the ones it accepts (:func:`tiny_options`)
TINY_MODEL: dict[str, Any] = {**TINY_ENCODER, **TINY_CLIP, **TINY_SSL, **TINY_REC}
#: bottleneck width where a test builds the model itself (the shipped configs' 16 stays for CLI runs)
TINY_LATENT_DIM = 8


def tiny_options(cls: type) -> dict[str, Any]:
    """The :data:`TINY_MODEL` options ``cls`` accepts through its ``__init__`` chain, and the latent width."""
    accepted: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            accepted |= set(inspect.signature(vars(klass)["__init__"]).parameters)
    return {k: v for k, v in TINY_MODEL.items() if k in accepted} | {"latent_dim": TINY_LATENT_DIM}
