"""The base provides every service of the mixin contract, and a mixin needs nothing else."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable

import pytest

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
