"""Tokenizers are compositions of objective mixins: each registers exactly its objectives, a fifth
objective is one mixin plus one composition line, and weight 0 switches an objective off."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from jsonargparse import ArgumentParser
from quiet_fit import fit_quietly
from tiny_sizes import tiny_options

from vtp_lightning.errors import ConfigError
from vtp_lightning.objectives import ObjectiveOutput, ReconstructionMixin, TokenizerModule
from vtp_lightning.tokenizer import TOKENIZERS, AETokenizer, SSLAETokenizer, VTPTokenizer

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off")

CONTRACT_OBJECTIVES = ("clip", "dino", "mim", "rec")
EXPECTED_OBJECTIVES: dict[str, set[str]] = {
    "ae": {"rec"},
    "clip_ae": {"clip", "rec"},
    "dino_ae": {"dino", "koleo", "rec"},
    "mim_ae": {"mim", "rec"},
    "ssl_ae": {"dino", "koleo", "mim", "rec"},
    "clip_dino_ae": {"clip", "dino", "koleo", "rec"},
    "clip_mim_ae": {"clip", "mim", "rec"},
    "clip_ssl_ae": {"clip", "dino", "koleo", "mim", "rec"},
}


class LatentNormMixin:
    """A toy fifth objective: penalise the mean L2 norm of the bottleneck latent vectors.

    Args:
        latent_norm_weight: weight of the latent-norm penalty; 0 switches it off.
    """

    def __init__(self, *, latent_norm_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_objective("latent_norm", latent_norm_weight, self._latent_norm_objective)

    def _latent_norm_objective(self, batch: dict[str, Any]) -> ObjectiveOutput:
        out = self.encode_cached("image", batch["image"])
        latents = self.bottleneck(out["patch"], tuple(out["grid"].tolist()))
        return ObjectiveOutput(latents.norm(dim=1).mean())


class LatentNormAETokenizer(LatentNormMixin, ReconstructionMixin, TokenizerModule):
    """The one composition line that adds the fifth objective."""


# ------------------------------------------------------------------------- the shipped compositions
def test_the_registry_lists_every_loss_combination_of_the_grid() -> None:
    assert set(TOKENIZERS) == set(EXPECTED_OBJECTIVES)


@pytest.mark.parametrize("name", sorted(EXPECTED_OBJECTIVES))
def test_every_tokenizer_registers_exactly_its_objectives(
    name: str, make_tokenizer: Callable[..., TokenizerModule]
) -> None:
    model = make_tokenizer(TOKENIZERS[name])
    expected = EXPECTED_OBJECTIVES[name]
    assert set(model.objectives) == expected
    for objective in CONTRACT_OBJECTIVES:
        assert model.has_objective(objective) == (objective in expected), objective
    assert hasattr(model, "text_tower") == ("clip" in expected)
    assert hasattr(model, "decoder") == ("rec" in expected)
    assert (len(model.teacher) > 0) == bool(expected & {"dino", "mim"})


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(EXPECTED_OBJECTIVES))
def test_one_training_step_gives_every_trainable_parameter_a_gradient(
    name: str, make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict]
) -> None:
    """No trainable parameter is left unused (DDP without find_unused_parameters needs this)."""
    model = make_tokenizer(TOKENIZERS[name])
    grads: dict[str, bool] = {}

    def record(*args: Any, **kwargs: Any) -> None:
        grads.update({n: p.grad is not None for n, p in model.named_parameters() if p.requires_grad})

    model.on_before_optimizer_step = record
    fit_quietly(model, [make_batch()], log_every_n_steps=1)
    assert grads, "the optimiser step never ran"
    assert [n for n, has_grad in grads.items() if not has_grad] == []


@pytest.mark.integration
def test_the_step_loss_is_the_weighted_sum_of_every_logged_objective_loss(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict]
) -> None:
    weights = dict(clip_weight=0.7, dino_weight=0.5, koleo_weight=0.2, mim_weight=0.3, rec_weight=0.1)
    model = make_tokenizer(VTPTokenizer, **weights)
    metrics = fit_quietly(model, [make_batch()], log_every_n_steps=1).logged_metrics
    terms = {name: metrics[f"train/loss_{name}"] for name in ("clip", "dino", "koleo", "mim", "rec")}
    expected = sum(weights[f"{name}_weight"] * value for name, value in terms.items())
    torch.testing.assert_close(metrics["train/loss"], expected)


# ------------------------------------------------------------------------------ a fifth objective
def test_a_fifth_objective_shows_up_in_the_jsonargparse_signature_of_its_composition() -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(LatentNormAETokenizer, "model")
    cfg = parser.parse_args(
        ["--model.latent_norm_weight", "0.5", "--model.rec_weight", "0.2", "--model.encoder_width", "32"]
    )
    assert cfg.model.latent_norm_weight == 0.5
    assert cfg.model.rec_weight == 0.2  # the options of the other mixins and the base are all there
    assert cfg.model.encoder_width == 32
    assert "latent_norm_weight" in parser.format_help()


def test_a_fifth_objective_is_built_from_the_cli_config_and_registered() -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(LatentNormAETokenizer, "model")
    args = ["--model.latent_norm_weight", "0.5"]
    tiny = tiny_options(AETokenizer) | {"image_size": 16}
    for key, value in tiny.items():
        args += [f"--model.{key}", str(value)]
    model = parser.instantiate_classes(parser.parse_args(args)).model
    assert isinstance(model, LatentNormAETokenizer)
    assert set(model.objectives) == {"latent_norm", "rec"}
    assert model.has_objective("latent_norm")
    assert model.objectives["latent_norm"].weight == 0.5


@pytest.mark.integration
def test_a_fifth_objective_is_logged_and_added_to_the_step_loss_with_its_weight(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict]
) -> None:
    model = make_tokenizer(LatentNormAETokenizer, latent_norm_weight=0.5, rec_weight=0.1)
    batch = make_batch()
    with torch.no_grad():  # independently: the mean latent-vector norm of the model before its step
        expected_norm = copy.deepcopy(model).encode(batch["image"]).norm(dim=1).mean()

    metrics = fit_quietly(model, [batch], log_every_n_steps=1).logged_metrics

    torch.testing.assert_close(metrics["train/loss_latent_norm"], expected_norm)
    torch.testing.assert_close(
        metrics["train/loss"], 0.5 * metrics["train/loss_latent_norm"] + 0.1 * metrics["train/loss_rec"]
    )


@pytest.mark.integration
def test_a_fifth_objective_with_weight_0_is_neither_computed_nor_logged(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict]
) -> None:
    model = make_tokenizer(LatentNormAETokenizer, latent_norm_weight=0.0)
    metrics = fit_quietly(model, [make_batch()], log_every_n_steps=1).logged_metrics
    assert not model.has_objective("latent_norm")
    assert "train/loss_latent_norm" not in metrics
    torch.testing.assert_close(metrics["train/loss"], 0.1 * metrics["train/loss_rec"])


def test_two_mixins_registering_the_same_objective_name_is_refused(
    make_tokenizer: Callable[..., Any],
) -> None:
    class Twice(LatentNormMixin, AETokenizer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(latent_norm_weight=1.0, **kwargs)
            self.add_objective("latent_norm", 1.0, self._latent_norm_objective)

    with pytest.raises(ConfigError, match="latent_norm"):
        make_tokenizer(Twice)


def test_two_mixins_declaring_the_same_option_name_are_refused_when_composed() -> None:
    class ClashingMixin:
        """A mixin that reuses the reconstruction objective's option name for its own weight."""

        def __init__(self, *, rec_weight: float = 1.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)

    with pytest.raises(TypeError, match="'rec_weight'.*ClashingMixin.*ReconstructionMixin"):

        class Clashing(ClashingMixin, ReconstructionMixin, TokenizerModule):
            pass


def test_no_two_classes_of_a_shipped_composition_declare_the_same_option() -> None:
    for name, cls in TOKENIZERS.items():
        declared: list[str] = []
        for klass in cls.__mro__:
            init = vars(klass).get("__init__")
            if init is None or klass is object:
                continue
            code = init.__code__
            declared += [n for n in code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]]
        assert len(declared) == len(set(declared)), name


# --------------------------------------------------------------------------------- weight 0 = off
def _frozen(*modules: torch.nn.Module | torch.nn.Parameter) -> bool:
    params: list[torch.nn.Parameter] = []
    for module in modules:
        params += [module] if isinstance(module, torch.nn.Parameter) else list(module.parameters())
    return not any(p.requires_grad for p in params)


def test_clip_weight_0_switches_clip_off_and_freezes_the_text_tower_projection_and_scale(
    make_tokenizer: Callable[..., TokenizerModule],
) -> None:
    model = make_tokenizer(VTPTokenizer, clip_weight=0.0)
    assert not model.has_objective("clip")
    assert _frozen(model.text_tower, model.clip_image_proj, model.logit_scale)
    assert model.has_objective("dino") and model.has_objective("mim") and model.has_objective("rec")


def test_dino_weight_0_switches_dino_and_koleo_off_but_keeps_the_head_for_mim(
    make_tokenizer: Callable[..., TokenizerModule],
) -> None:
    model = make_tokenizer(VTPTokenizer, dino_weight=0.0)
    assert not model.has_objective("dino") and not model.has_objective("koleo")
    assert not hasattr(model, "dino_targets")
    assert model.has_objective("mim") and hasattr(model, "ssl_head")


def test_mim_weight_0_switches_mim_off_and_freezes_the_mask_token(
    make_tokenizer: Callable[..., TokenizerModule],
) -> None:
    model = make_tokenizer(VTPTokenizer, mim_weight=0.0)
    assert not model.has_objective("mim")
    assert not hasattr(model, "ibot_targets")
    assert _frozen(model.encoder.mask_token)
    assert not model.masks_in_use()


def test_rec_weight_0_switches_reconstruction_off_and_freezes_the_decoder(
    make_tokenizer: Callable[..., TokenizerModule],
) -> None:
    model = make_tokenizer(VTPTokenizer, rec_weight=0.0)
    assert not model.has_objective("rec")
    assert _frozen(model.decoder)


def test_both_ssl_weights_0_build_no_head_and_no_teacher(
    make_tokenizer: Callable[..., TokenizerModule],
) -> None:
    model = make_tokenizer(SSLAETokenizer, dino_weight=0.0, mim_weight=0.0)
    assert not hasattr(model, "ssl_head")
    assert len(model.teacher) == 0


@pytest.mark.integration
@pytest.mark.parametrize("off", ["clip_weight", "dino_weight", "mim_weight", "rec_weight"])
def test_a_switched_off_objective_is_not_logged_and_leaves_no_unused_trainable_parameter(
    off: str, make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict]
) -> None:
    model = make_tokenizer(VTPTokenizer, **{off: 0.0})
    grads: dict[str, bool] = {}
    model.on_before_optimizer_step = lambda *a, **k: grads.update(
        {n: p.grad is not None for n, p in model.named_parameters() if p.requires_grad}
    )
    metrics = fit_quietly(model, [make_batch()], log_every_n_steps=1).logged_metrics
    assert f"train/loss_{off.removesuffix('_weight')}" not in metrics
    assert [n for n, has_grad in grads.items() if not has_grad] == []


@pytest.mark.integration
def test_every_objective_at_weight_0_is_a_config_error_at_the_first_step(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict]
) -> None:
    model = make_tokenizer(AETokenizer, rec_weight=0.0)
    with pytest.raises(ConfigError, match="weight 0"):
        fit_quietly(model, [make_batch()], log_every_n_steps=1)
