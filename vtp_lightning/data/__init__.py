"""Data for VTP: image-text sources, views, iBOT masks, collates and the ``VTPDataModule``."""

from vtp_lightning.data.collate import EvalCollate, TrainCollate
from vtp_lightning.data.datamodule import VTPDataModule
from vtp_lightning.data.masking import BlockMaskGenerator
from vtp_lightning.data.sources import (
    CaptionFile,
    EmbeddedFashionMNIST,
    FashionMNISTIDX,
    ImageFolder,
    ImageTextSource,
    IndexedSource,
    Sample,
    StreamingSource,
    WebDatasetShards,
)
from vtp_lightning.data.templates import CAPTION_TEMPLATES, FASHION_MNIST_CLASSES
from vtp_lightning.data.tokenizer import CaptionTokenizer
from vtp_lightning.pixels import denormalize, normalize

__all__ = [
    "CAPTION_TEMPLATES",
    "FASHION_MNIST_CLASSES",
    "BlockMaskGenerator",
    "CaptionFile",
    "CaptionTokenizer",
    "EmbeddedFashionMNIST",
    "EvalCollate",
    "FashionMNISTIDX",
    "ImageFolder",
    "ImageTextSource",
    "IndexedSource",
    "Sample",
    "StreamingSource",
    "TrainCollate",
    "VTPDataModule",
    "WebDatasetShards",
    "denormalize",
    "normalize",
]
