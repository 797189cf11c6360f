"""The base provides every service of the mixin contract, and a mixin needs nothing else."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from typing import Any, Protocol

import lightning.pytorch as pl
import pytest
import torch

from vtp_lightning.objectives import (
    ContrastiveMixin,
    MIMMixin,
    ReconstructionMixin,
    SelfDistillationMixin,
    SSLViewsMixin,
    TokenizerModule,
)
from vtp_lightning.objectives.contract import TokenizerServices
from vtp_lightning.tokenizer import AETokenizer

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off")

MIXINS = (ContrastiveMixin, SelfDistillationMixin, MIMMixin, SSLViewsMixin, ReconstructionMixin)


def test_a_tokenizer_provides_every_service_of_the_contract(
    make_tokenizer: Callable[..., TokenizerModule],
) -> None:
    assert isinstance(make_tokenizer(AETokenizer), TokenizerServices)


def test_the_step_cache_is_public_and_empty_between_steps(
    make_tokenizer: Callable[..., TokenizerModule],
) -> None:
    assert make_tokenizer(AETokenizer).step_cache == {}


@pytest.mark.parametrize("mixin", MIXINS, ids=lambda m: m.__name__)
def test_a_mixin_uses_no_private_attribute_of_the_base(mixin: type) -> None:
    """``self._x`` in a mixin must be the mixin's own (assigned in its own code), never the base's."""
    tree = ast.parse(inspect.getsource(inspect.getmodule(mixin)))
    used, assigned = set(), set()
    for node in ast.walk(tree):
        is_self = (
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
        )
        if is_self and node.attr.startswith("_") and not node.attr.startswith("__"):
            (assigned if isinstance(node.ctx, ast.Store) else used).add(node.attr)
    methods = {name for name, _ in inspect.getmembers(mixin, inspect.isfunction)}
    assert used - assigned - methods == set()


def signature_drift(protocol: type, implementation: type) -> list[str]:
    """The methods and properties of ``protocol`` whose signature on ``implementation`` differs in a
    parameter's name, kind, default or annotation, or in the return annotation (or that it lacks)."""
    drifted = []
    for name, declared in vars(protocol).items():
        if name.startswith("_") or not (inspect.isfunction(declared) or isinstance(declared, property)):
            continue
        provided = inspect.getattr_static(implementation, name, None)
        if isinstance(declared, property):
            same = isinstance(provided, property) and (
                inspect.signature(declared.fget) == inspect.signature(provided.fget)
            )
        else:
            same = inspect.isfunction(provided) and inspect.signature(declared) == inspect.signature(provided)
        if not same:
            drifted.append(name)
    return drifted


def test_every_service_has_the_signature_the_contract_declares() -> None:
    assert signature_drift(TokenizerServices, TokenizerModule) == []


class _ContractWithoutPatchRows(Protocol):
    def student_encode(
        self, images: torch.Tensor, *, masks: torch.Tensor | None = None, drop_path_rate: float = 0.0
    ) -> dict[str, Any]: ...

    @property
    def progress(self) -> int: ...


def test_the_signature_check_catches_a_missing_parameter_and_a_changed_return_type() -> None:
    assert signature_drift(_ContractWithoutPatchRows, TokenizerModule) == ["student_encode", "progress"]


@pytest.mark.parametrize("mixin", MIXINS, ids=lambda m: m.__name__)
def test_a_mixin_derives_from_the_contract_so_the_type_check_sees_its_services(mixin: type) -> None:
    tree = ast.parse(inspect.getsource(inspect.getmodule(mixin)))
    (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == mixin.__name__]
    bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
    assert bases and bases <= {"TokenizerMixin"} | {m.__name__ for m in MIXINS}


@pytest.mark.parametrize("mixin", MIXINS, ids=lambda m: m.__name__)
def test_a_mixin_overrides_no_lightning_hook(mixin: type) -> None:
    """Work after the optimiser step goes through ``add_after_optimizer_step``, not ``optimizer_step``."""
    lightning_names = {name for name in dir(pl.LightningModule) if not name.startswith("__")}
    assert set(vars(mixin)) & lightning_names == set()
