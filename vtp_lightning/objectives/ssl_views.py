"""SSLViewsMixin: what DINO and iBOT share — the prototype head, the teacher, temperatures, one
student/teacher pass over the multi-crop views per step, and one head call per side per step.

Both :class:`SelfDistillationMixin` and :class:`MIMMixin` inherit it, so it appears once in a
composition's MRO and its options appear once in the config.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import torch

from vtp_lightning.errors import ConfigError
from vtp_lightning.models.dino_head import DINOHead
from vtp_lightning.objectives.contract import TokenizerMixin
from vtp_lightning.objectives.schedules import linear_warmup


class SSLOptions(TypedDict):
    """The ``ssl_*`` options the SSL objectives read, keyed without the prefix."""

    num_prototypes: int
    student_temp: float
    teacher_temp: float
    teacher_temp_start: float
    teacher_temp_warmup: float
    teacher_targets: Literal["centering", "sinkhorn"]
    center_momentum: float
    drop_path: float
    scored_tokens_only: bool


class SSLViewsMixin(TokenizerMixin):
    """Shared machinery of the self-supervised objectives.

    Args:
        ssl_num_prototypes: K, prototypes of the DINO head (DINOv2: 65536; small runs use far fewer).
        ssl_head_hidden_dim: hidden width of the head MLP (VTP: 2048).
        ssl_head_bottleneck_dim: width before the prototypes (VTP: 256).
        ssl_student_temp: student softmax temperature.
        ssl_teacher_temp: teacher temperature after warm-up.
        ssl_teacher_temp_start: teacher temperature at the start of warm-up.
        ssl_teacher_temp_warmup: fraction of training over which the teacher temperature warms up.
        ssl_teacher_targets: ``centering`` (EMA centre, DINO) or ``sinkhorn`` (Sinkhorn-Knopp, DINOv2 option).
        ssl_center_momentum: EMA momentum of the teacher centre.
        ssl_drop_path: stochastic depth of the student's multi-crop passes (the teacher uses 0).
        ssl_scored_tokens_only: the student's and teacher's multi-crop passes run their last block's
            FFN and final norm only on the tokens a loss scores (CLS, and the masked patches when
            iBOT is on; :meth:`ViTEncoder.forward`'s ``patch_rows``): the same losses, ~3 % less work
            at the paper's S; gradients differ from the full pass in float rounding, so off by default
            (the archived grid numbers stay reproducible), on in the scale presets.
    """

    def __init__(
        self,
        *,
        ssl_num_prototypes: int = 65536,
        ssl_head_hidden_dim: int = 2048,
        ssl_head_bottleneck_dim: int = 256,
        ssl_student_temp: float = 0.1,
        ssl_teacher_temp: float = 0.07,
        ssl_teacher_temp_start: float = 0.04,
        ssl_teacher_temp_warmup: float = 0.3,
        ssl_teacher_targets: Literal["centering", "sinkhorn"] = "centering",
        ssl_center_momentum: float = 0.9,
        ssl_drop_path: float = 0.0,
        ssl_scored_tokens_only: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ssl_options: SSLOptions = {
            "num_prototypes": ssl_num_prototypes,
            "student_temp": ssl_student_temp,
            "teacher_temp": ssl_teacher_temp,
            "teacher_temp_start": ssl_teacher_temp_start,
            "teacher_temp_warmup": ssl_teacher_temp_warmup,
            "teacher_targets": ssl_teacher_targets,
            "center_momentum": ssl_center_momentum,
            "drop_path": ssl_drop_path,
            "scored_tokens_only": ssl_scored_tokens_only,
        }
        self._head_dims = (ssl_head_hidden_dim, ssl_head_bottleneck_dim)
        self._head_scores: set[str] = set()

    def require_ssl_head(self, scores: Literal["cls", "masked_patches"]) -> None:
        """Create the shared DINO head (once) and an EMA teacher of encoder + head.

        ``scores`` names the tokens the calling objective needs head logits for; :meth:`ssl_head_logits`
        scores all of them in one call per side.
        """
        self._head_scores.add(scores)
        if not hasattr(self, "ssl_head"):
            hidden, bottleneck = self._head_dims
            self.ssl_head = DINOHead(
                self.encoder.width, self.ssl_options["num_prototypes"], hidden, bottleneck
            )
        self.require_teacher("encoder", "ssl_head")

    def teacher_temp_now(self) -> float:
        o = self.ssl_options
        return linear_warmup(
            o["teacher_temp_start"], o["teacher_temp"], self.progress, o["teacher_temp_warmup"]
        )

    def masks_in_use(self) -> bool:
        """Whether the student's global crops get iBOT masks this run (only when MIM is enabled)."""
        return self.has_objective("mim")

    def ssl_views(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One student pass over (masked) global and local crops and one teacher pass, cached per step."""
        key = ("ssl_views",)
        if key in self.step_cache:
            return self.step_cache[key]
        if "global_crops" not in batch:
            raise ConfigError(
                "the self-supervised objectives need multi-crop views but the batch has none; "
                "set data.ssl_batch_size to a positive number (or null for the whole batch)"
            )
        global_crops = batch["global_crops"]
        n = global_crops.shape[1]
        flat_global = global_crops.flatten(0, 1)
        masks = batch["masks"].flatten(0, 1) if self.masks_in_use() and "masks" in batch else None
        drop = self.ssl_options["drop_path"]
        grid = self.encoder_config.grid_of(flat_global.shape[-2:])
        if masks is not None and tuple(masks.shape[1:]) != grid:
            raise ConfigError(
                f"mask grid {tuple(masks.shape[1:])} does not match the patch grid "
                f"{grid}; data.patch_size must equal model patch_size"
            )
        global_rows = self._scored_patch_rows(flat_global, masks)
        student_global = self.student_encode(
            flat_global, masks=masks, drop_path_rate=drop, patch_rows=global_rows
        )
        student_local = None
        if "local_crops" in batch:
            local = batch["local_crops"].flatten(0, 1)
            student_local = self.student_encode(
                local, drop_path_rate=drop, patch_rows=self._scored_patch_rows(local, None)
            )
            student_local["num_views"] = batch["local_crops"].shape[0]
        with torch.no_grad():
            teacher_global = self.teacher["encoder"](flat_global, patch_rows=global_rows)
        views = {
            "n": n,
            "masks": masks,
            "global_crops": flat_global,
            "student_global": student_global,
            "student_local": student_local,
            "teacher_global": teacher_global,
        }
        self.step_cache[key] = views
        return views

    def _scored_patch_rows(self, crops: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor | None:
        """The patch tokens of ``crops`` a loss scores (``patch_rows``), or None to compute every token."""
        if not self.ssl_options["scored_tokens_only"]:
            return None
        if masks is not None:
            return masks.flatten(1)
        h, w = self.encoder_config.grid_of(crops.shape[-2:])
        return torch.zeros(crops.shape[0], h * w, dtype=torch.bool, device=crops.device)

    def ssl_head_logits(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Head logits for every token the SSL objectives score: one student and one teacher call per step.

        As DINOv2's meta-architecture does, the student head runs once over the concatenated global CLS,
        local CLS and masked global patch tokens, and the teacher head once over its global CLS and the
        same masked patches, so the MLP runs on one stacked input and the ``K x bottleneck`` prototypes
        are normalised once per side instead of once per input. Cached for the step.

        Returns ``student_global_cls`` (2n, K), ``student_local_cls`` (views*n, K) or None,
        ``teacher_cls`` (2n, K) (when DINO scores CLS), and ``student_masked``, ``teacher_masked``
        (M, K) with ``sample_index`` (M,) (when iBOT scores masked patches).
        """
        key = ("ssl_head_logits",)
        if key in self.step_cache:
            return self.step_cache[key]
        views = self.ssl_views(batch)
        student_in: dict[str, torch.Tensor] = {}
        teacher_in: dict[str, torch.Tensor] = {}
        if "cls" in self._head_scores:
            student_in["student_global_cls"] = views["student_global"]["cls"]
            if views["student_local"] is not None:
                student_in["student_local_cls"] = views["student_local"]["cls"]
            teacher_in["teacher_cls"] = views["teacher_global"]["cls"]
        out: dict[str, Any] = {"student_local_cls": None}
        if "masked_patches" in self._head_scores and views["masks"] is not None:
            flat_masks = views["masks"].flatten(1)
            student_in["student_masked"] = masked_patch_tokens(views["student_global"], flat_masks)
            teacher_in["teacher_masked"] = masked_patch_tokens(views["teacher_global"], flat_masks)
            out["sample_index"] = flat_masks.nonzero()[:, 0]
        out |= _split_rows(self.ssl_head, student_in)
        with torch.no_grad():
            out |= _split_rows(self.teacher["ssl_head"], teacher_in)
        self.step_cache[key] = out
        return out


def masked_patch_tokens(view: dict[str, torch.Tensor], flat_masks: torch.Tensor) -> torch.Tensor:
    """A view's tokens at the masked patches ``(M, D)``, whether its pass kept every patch or only these."""
    return view["patch_rows"] if "patch_rows" in view else view["patch"][flat_masks]


def _split_rows(head: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``head`` applied once to the row-wise concatenation of ``inputs``, split back by name."""
    if not inputs:
        return {}
    logits = head(torch.cat(list(inputs.values())))
    return dict(zip(inputs, logits.split([t.shape[0] for t in inputs.values()]), strict=True))
