"""Zero-shot classification with a contrastive text tower, as CLIP and the paper evaluate it.

Each class becomes one text embedding: the class name is put into every prompt template, each
prompt is embedded and L2-normalised, the prompts are averaged and the mean is normalised again.
An image is assigned the class whose embedding has the highest cosine similarity (scaled by 100,
CLIP's logit scale, which does not change the arg-max).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

# A handful of CLIP-style prompts that fit small grey product photos such as Fashion-MNIST.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "a grayscale photo of a {}.",
    "a photo of the {}, a type of clothing.",
    "a small photo of a {}.",
)


@torch.no_grad()
def build_zero_shot_classifier(
    encode_text: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> torch.Tensor:
    """Class embeddings ``(E, C)``, one normalised column per class.

    ``encode_text`` maps prompts to embeddings ``(len(prompts), E)``; it is called once per class
    so the number of classes never limits memory.
    """
    if not class_names or not templates:
        raise ValueError("zero-shot classification needs at least one class name and one template")
    columns = []
    for name in class_names:
        prompts = [template.format(name) for template in templates]
        embeddings = F.normalize(encode_text(prompts).float(), dim=-1)
        columns.append(F.normalize(embeddings.mean(dim=0), dim=-1))
    return torch.stack(columns, dim=1)


def zero_shot_logits(image_embeddings: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """``100 * cosine`` between images ``(N, E)`` and classes ``(E, C)``: logits ``(N, C)``."""
    return 100.0 * F.normalize(image_embeddings.float(), dim=-1) @ classifier.to(image_embeddings.device)


@torch.no_grad()
def zero_shot_top1(image_embeddings: torch.Tensor, classifier: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy (a fraction in ``[0, 1]``) of zero-shot predictions; labels ``-1`` are ignored."""
    known = labels >= 0
    if not known.any():
        raise ValueError("zero-shot accuracy needs labelled images; all labels are -1")
    predictions = zero_shot_logits(image_embeddings[known], classifier).argmax(dim=1)
    return float((predictions == labels[known].to(predictions.device)).float().mean())
