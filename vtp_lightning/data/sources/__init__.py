"""Image-text data sources behind one interface, :class:`ImageTextSource`."""

from vtp_lightning.data.sources.base import ImageTextSource, IndexedSource, Sample, StreamingSource
from vtp_lightning.data.sources.caption_file import CaptionFile
from vtp_lightning.data.sources.embedded import EmbeddedFashionMNIST
from vtp_lightning.data.sources.fashion_mnist_idx import FashionMNISTIDX
from vtp_lightning.data.sources.image_folder import ImageFolder
from vtp_lightning.data.sources.webdataset_shards import WebDatasetShards

__all__ = [
    "CaptionFile",
    "EmbeddedFashionMNIST",
    "FashionMNISTIDX",
    "ImageFolder",
    "ImageTextSource",
    "IndexedSource",
    "Sample",
    "StreamingSource",
    "WebDatasetShards",
]
