"""vtp-convert's model.yaml names only options the composition declares, and follows a renamed one."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml

from vtp_lightning.data import VTPDataModule
from vtp_lightning.errors import CheckpointError
from vtp_lightning.official.command import main
from vtp_lightning.official.model_options import option_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off")


def _init_keywords(cls: type) -> set[str]:
    """Every named keyword of every ``__init__`` in ``cls``'s class chain."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and klass is not object:
            names |= set(inspect.signature(vars(klass)["__init__"]).parameters) - {"self", "args", "kwargs"}
    return names


@pytest.mark.parametrize("source", ["hf", "train.pt"])
def test_every_model_yaml_option_is_a_keyword_of_the_class_it_names(source: str, tmp_path: Path) -> None:
    assert main([str(FIXTURES / source), str(tmp_path / "out"), "--text-heads", "2"]) == 0
    written = yaml.safe_load((tmp_path / "out" / "model.yaml").read_text())
    module, _, name = written["model"]["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert set(written["model"]["init_args"]) <= _init_keywords(cls)
    assert set(written["data"]) == {"image_size", "patch_size"} <= _init_keywords(VTPDataModule)


class _Owner:
    def __init__(self, *, vq_decoder_width: int = 1, vq_weight: float = 1.0, **kwargs: object) -> None:
        super().__init__(**kwargs)


class _Base:
    def __init__(self, *, width: int = 1) -> None:
        pass


class _Composition(_Owner, _Base):
    pass


def test_a_field_goes_to_the_option_its_owner_declares_under_any_prefix() -> None:
    assert option_for(_Composition, _Owner, "width") == "vq_decoder_width"
    assert option_for(_Composition, _Base, "width") == "width"  # an exact name wins
    assert option_for(_Composition, _Owner, "depth") is None  # no option: fixed by the design


def test_two_options_that_could_take_one_field_are_an_error_not_a_guess() -> None:
    class Ambiguous:
        def __init__(self, *, a_width: int = 1, b_width: int = 2) -> None:
            pass

    with pytest.raises(CheckpointError, match="cannot tell which"):
        option_for(Ambiguous, Ambiguous, "width")
