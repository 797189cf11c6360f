"""The mixin contract: what an objective mixin may use of the tokenizer it is composed into.

A mixin is a plain class listed before :class:`~vtp_lightning.objectives.base.TokenizerModule` in a
composition. Its ``__init__`` takes keyword-only options prefixed with its objective's name
(``clip_``, ``ssl_``/``dino_``/``mim_``, ``rec_``; two mixins declaring one name are refused when the
composition is defined), passes the rest up with ``super().__init__(**kwargs)``, creates its own
sub-modules and registers its loss with :meth:`TokenizerServices.add_objective`. At step time it reads
the batch and calls only the services below; it never touches the optimiser, the logging loop, a
Lightning hook, a private attribute of the base or another mixin's state. Work after the optimiser step
(e.g. clamping a parameter) is registered with :meth:`TokenizerServices.add_after_optimizer_step`.

How it is enforced:

- a mixin derives from :data:`TokenizerMixin`, which is ``object`` at run time (the MRO is unchanged)
  and :class:`TokenizerServices` for the type checker, so ``self`` in a mixin has exactly these
  services plus the mixin's own attributes; ``make lint`` runs mypy over ``vtp_lightning/objectives``;
- ``tests/objectives/test_contract.py`` checks that the base provides every service with the same
  signature as declared here, that the mixins derive from :data:`TokenizerMixin` and override no
  Lightning hook, and that no mixin reads a private attribute it did not set itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from vtp_lightning.models.autoencoder import VTPAutoencoder
from vtp_lightning.models.decoder import PixelDecoder
from vtp_lightning.models.vit import Bottleneck, ViTConfig, ViTEncoder
from vtp_lightning.objectives.ema_teacher import EMATeacher
from vtp_lightning.objectives.objective import ObjectiveOutput


@runtime_checkable
class TokenizerServices(Protocol):
    """The services of the base, as a mixin sees them."""

    #: the encode/decode model the tokenizer trains; its parts are the tokenizer's ``encoder``,
    #: ``bottleneck`` and (once attached) ``decoder``
    autoencoder: VTPAutoencoder
    #: the shared ViT encoder (student) and its configuration
    encoder: ViTEncoder
    encoder_config: ViTConfig
    #: the bias-free linear map to the d-dim latent, and d
    bottleneck: Bottleneck
    latent_dim: int
    #: the pixel decoder; present only once :meth:`attach_decoder` ran (reconstruction's)
    decoder: PixelDecoder
    #: EMA copies of student modules, filled by :meth:`require_teacher` (``teacher["encoder"]``)
    teacher: EMATeacher
    #: a dict emptied at the start and end of every training step: mixins that share work within a
    #: step (e.g. one pass over the multi-crop views for DINO and iBOT) keep it here under their own key
    step_cache: dict[Any, Any]

    def add_objective(
        self,
        name: str,
        weight: float,
        loss: Callable[[dict[str, Any]], ObjectiveOutput],
        validate: Callable[[dict[str, Any]], dict[str, torch.Tensor]] | None = None,
    ) -> None:
        """Register a loss; the base adds ``weight * loss`` to the step and logs ``train/loss_<name>``."""

    def has_objective(self, name: str) -> bool:
        """Whether objective ``name`` is registered with a positive weight."""

    def attach_decoder(self, config: ViTConfig) -> PixelDecoder:
        """Give the autoencoder its pixel decoder, then reachable as ``decoder`` (once per tokenizer)."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> bottleneck latents, without gradients (the autoencoder's encode)."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images through the attached decoder, without gradients."""

    def require_teacher(self, *module_names: str) -> None:
        """Keep EMA copies of the named student modules in :attr:`teacher`."""

    def encode_cached(
        self,
        key: Any,
        images: torch.Tensor,
        *,
        drop_path_rate: float = 0.0,
        masks: torch.Tensor | None = None,
        teacher: bool = False,
    ) -> dict[str, Any]:
        """One encoder pass per ``key`` and settings per step, shared by every mixin that asks."""

    def student_encode(
        self,
        images: torch.Tensor,
        *,
        masks: torch.Tensor | None = None,
        drop_path_rate: float = 0.0,
        patch_rows: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """One uncached student encoder pass (stochastic depth spread by the module's schedule);
        ``patch_rows`` limits the last block's FFN and norm to the patch tokens a loss scores."""

    def add_after_optimizer_step(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` after every optimiser step (after the EMA teacher update), in registration order."""

    @property
    def progress(self) -> float:
        """Fraction of training done (for per-iteration schedules); restored on resume."""

    def teacher_momentum_now(self) -> float:
        """The EMA momentum the teacher is updated with after this step."""


if TYPE_CHECKING:
    #: what every mixin derives from: the services above for the type checker
    TokenizerMixin = TokenizerServices
else:
    #: ... and nothing at run time, so a composition's MRO is the mixins, then the base
    TokenizerMixin = object
