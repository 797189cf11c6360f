"""The tokenizers: each one line of mixins over :class:`TokenizerModule`.

YAML picks one by ``class_path`` (jsonargparse cannot compose classes from YAML) and can switch an
objective off by its weight. Mixin order only decides the order of options in ``--help``.
"""

from __future__ import annotations

from vtp_lightning.combinations import COMBINATIONS
from vtp_lightning.objectives import (
    ContrastiveMixin,
    MIMMixin,
    ReconstructionMixin,
    SelfDistillationMixin,
    TokenizerModule,
)


class AETokenizer(ReconstructionMixin, TokenizerModule):
    """Reconstruction only (the baseline that stops helping generation as compute grows)."""


class CLIPAETokenizer(ContrastiveMixin, ReconstructionMixin, TokenizerModule):
    """Contrastive image-text learning + reconstruction."""


class DINOAETokenizer(SelfDistillationMixin, ReconstructionMixin, TokenizerModule):
    """DINO self-distillation + reconstruction."""


class MIMAETokenizer(MIMMixin, ReconstructionMixin, TokenizerModule):
    """iBOT masked image modeling + reconstruction."""


class SSLAETokenizer(SelfDistillationMixin, MIMMixin, ReconstructionMixin, TokenizerModule):
    """DINO + iBOT (L_ssl) + reconstruction."""


class CLIPDINOAETokenizer(ContrastiveMixin, SelfDistillationMixin, ReconstructionMixin, TokenizerModule):
    """Contrastive + DINO + reconstruction."""


class CLIPMIMAETokenizer(ContrastiveMixin, MIMMixin, ReconstructionMixin, TokenizerModule):
    """Contrastive + iBOT + reconstruction."""


class VTPTokenizer(ContrastiveMixin, SelfDistillationMixin, MIMMixin, ReconstructionMixin, TokenizerModule):
    """VTP: contrastive + DINO + iBOT + reconstruction (the paper's best for generation)."""


#: combination name -> tokenizer class, in the order of :data:`vtp_lightning.combinations.COMBINATIONS`
TOKENIZERS = {name: globals()[class_name] for name, class_name in COMBINATIONS.items()}
