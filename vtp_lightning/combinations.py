"""The loss combinations of the ablation grid, defined once: name -> tokenizer class name.

Kept free of heavy imports so the Makefile (``python -m vtp_lightning.combinations``) and the grid
runner read it in a fraction of a second; :mod:`vtp_lightning.tokenizer` builds its class registry
from it, and every combination has ``experiments/<name>.yaml``.
"""

from __future__ import annotations

COMBINATIONS: dict[str, str] = {
    "ae": "AETokenizer",
    "clip_ae": "CLIPAETokenizer",
    "dino_ae": "DINOAETokenizer",
    "mim_ae": "MIMAETokenizer",
    "ssl_ae": "SSLAETokenizer",
    "clip_dino_ae": "CLIPDINOAETokenizer",
    "clip_mim_ae": "CLIPMIMAETokenizer",
    "clip_ssl_ae": "VTPTokenizer",
}

if __name__ == "__main__":
    print(" ".join(COMBINATIONS))
